//! Ignore files: any bytes read as a `.dockerignore` give rules or an error naming a line, never a panic, and matching any path with them ends (linear time) without a panic.
#![no_main]

use baleine::domain::dockerignore::Rules;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first line is the path to judge; the rest is the ignore file.
    let (path, file) = match data.iter().position(|&b| b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &b""[..]),
    };
    let Ok(rules) = Rules::parse(file) else { return };
    // Walked down as the context walker does, each directory's results
    // carried to its entries.
    let mut parent = None;
    let mut at = 0;
    loop {
        let end = path[at..]
            .iter()
            .position(|&b| b == b'/')
            .map_or(path.len(), |i| at + i);
        let (_, matched) = rules.excludes(&path[..end], parent.as_ref());
        if end == path.len() {
            break;
        }
        parent = Some(matched);
        at = end + 1;
    }
});
