//! Registry answers' headers: Bearer challenges, Link pagination and origins, never a panic.
#![no_main]

use baleine::remote::registry::{next_link, origin, parse_bearer_challenge};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Some(challenge) = parse_bearer_challenge(text) {
        let _ = origin(&challenge.realm);
    }
    if let Some(target) = next_link(text) {
        let _ = origin(&target);
    }
    let _ = origin(text);
});
