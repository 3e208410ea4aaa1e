//! What a node sends back: any stdout and stderr read as a result or a failure with a stage, never a panic.
#![no_main]

use baleine::jobs::ps::ps_record;
use baleine::remote::protocol::{interpret, SessionEnd, Values};
use baleine::remote::script::Docker;
use libfuzzer_sys::fuzz_target;
use std::time::Duration;

fuzz_target!(|data: (u8, &str, &str)| {
    let (status, stdout, stderr) = data;
    let end = SessionEnd {
        status: (status != 255).then_some(i32::from(status)),
        stdout: stdout.to_owned(),
        stderr: stderr.to_owned(),
        payload: None,
        cut: None,
    };
    match interpret(&end, Duration::from_secs(30)) {
        Ok(values) => {
            let others = stdout
                .lines()
                .filter_map(|l| l.strip_prefix("other="))
                .filter_map(|json| serde_json::from_str(json).ok())
                .collect();
            let _ = ps_record(&Docker::default(), &values, others, 1_795_308_245);
        }
        Err(failure) => assert!(!failure.error.is_empty()),
    }
    let mut values = Values::new();
    values.insert("container".into(), stdout.to_owned());
    values.insert("digests".into(), stderr.to_owned());
    let _ = ps_record(&Docker::default(), &values, Vec::new(), 0);
});
