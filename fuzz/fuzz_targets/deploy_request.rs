//! Deploy requests: any stdin line read as a record and taken as a node's request gives a plan or an error naming a field, never a panic, and a plan's script quotes every word.
#![no_main]

use baleine::domain::nodes::{NodeName, NodeNaming};
use baleine::framework::input::{read_stdin, Input};
use baleine::jobs::deploy::{deploy_script, DeployPlan, RunLabels};
use baleine::remote::script::Docker;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let defaults = DeployPlan::new(Some("busybox"), None, vec!["sleep".into(), "1".into()])
        .expect("valid defaults");
    let (tx, rx) = crossbeam::channel::unbounded();
    let checked = defaults.clone();
    let check = move |request: &baleine::framework::input::Request| {
        checked.requested(Some(request)).map(drop)
    };
    read_stdin(data, &NodeNaming::default(), Some(&check), &tx);
    drop(tx);
    let labels = RunLabels {
        user: "fuzz".into(),
        run: "t1".into(),
    };
    for input in rx.try_iter() {
        match input {
            Input::Record(node, request) => {
                let plan = defaults
                    .requested(Some(&request))
                    .expect("a request that passed its check is a plan");
                let Ok(plan) = plan.for_node(&node) else { continue };
                let script = deploy_script(&plan, &Docker::default(), &[], None, &labels);
                assert!(script.contains("docker run -d --name container"));
            }
            Input::Invalid { error, .. } => assert!(error.starts_with("stdin line ")),
            Input::Node(_) => {}
        }
    }
    let _ = NodeName::new("fit01");
});
