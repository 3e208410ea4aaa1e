//! A node's tar (baleine-cp --from): any bytes unpack without a panic, and nothing lands outside the destination.
#![no_main]

use baleine::remote::tarball::unpack;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let root = std::env::temp_dir().join(format!("baleine-fuzz-tar-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let dest = root.join("dest");
    std::fs::create_dir_all(&dest).unwrap();
    let _ = unpack(bytes, &dest);
    // Only `dest` may have anything in it.
    let beside: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name() != "dest")
        .collect();
    assert!(beside.is_empty(), "written beside the destination: {beside:?}");
    let _ = std::fs::remove_dir_all(&root);
});
