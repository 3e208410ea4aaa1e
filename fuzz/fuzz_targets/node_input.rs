//! Node specs and stdin lines: any bytes on stdin give input records, never a panic.
#![no_main]

use baleine::domain::nodes::{expand_specs, fold_names, parse_input_line, NodeNaming};
use baleine::framework::input::{read_stdin, Input};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let naming = NodeNaming::default();
    let (tx, rx) = crossbeam::channel::unbounded();
    read_stdin(data, &naming, None, &tx);
    drop(tx);
    for input in rx.try_iter() {
        if let Input::Invalid { error, .. } = input {
            assert!(error.starts_with("stdin line "));
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_input_line(text);
        if let Ok(names) = expand_specs(text.split_whitespace(), &naming) {
            // Folding then expanding gives the same set back.
            let mut back = expand_specs(&fold_names(&names, &naming), &naming).unwrap();
            let mut names = names;
            back.sort();
            names.sort();
            assert_eq!(back, names);
        }
    }
});
