//! rdsh's arguments as sshd may pass them, and docker's answers about the container, never a panic.
#![no_main]

use baleine::jobs::rdsh::{container_state, parse_args};
use libfuzzer_sys::fuzz_target;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

fuzz_target!(|data: &[u8]| {
    let args: Vec<OsString> = data
        .split(|b| *b == 0)
        .map(|word| OsString::from_vec(word.to_vec()))
        .collect();
    let _ = parse_args(&args);
    let (first, rest) = data.split_at(data.len() / 2);
    let _ = container_state(data.first().is_some_and(|b| b % 2 == 0), first, rest);
});
