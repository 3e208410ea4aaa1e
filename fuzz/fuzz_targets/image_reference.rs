//! Image references: whatever parses displays back to a reference that parses the same.
#![no_main]

use baleine::domain::reference::{repo_digest, split_name_tag, validate_repository_name, ImageRef};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(image) = ImageRef::parse(text) {
        let shown = image.to_string();
        assert_eq!(ImageRef::parse(&shown).as_ref(), Ok(&image));
        let _ = image.repository();
        let _ = repo_digest(&image, text);
        let _ = image.with_digest(text);
    }
    let _ = split_name_tag(text);
    let _ = validate_repository_name(text);
});
