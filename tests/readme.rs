//! The README's commands, run on the testbed: the tour and the recipes cannot rot.
//!
//! Blocks fenced as `console` hold `$ command` lines followed by the output
//! they printed. Each command must succeed (or exit N when it ends with the
//! comment `# exits N`); where the README shows JSON lines, the real ones
//! must be as many and have the same fields.

mod common;

use common::Testbed;
use std::path::Path;
use std::process::Command;

/// (command, sample output lines) of every `console` block, in order.
fn readme_commands() -> Vec<(String, Vec<String>)> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let mut commands: Vec<(String, Vec<String>)> = Vec::new();
    let mut in_console = false;
    for line in readme.lines() {
        if line.starts_with("```") {
            in_console = !in_console && line.trim() == "```console";
            continue;
        }
        if !in_console {
            continue;
        }
        match line.strip_prefix("$ ") {
            Some(command) => commands.push((command.to_owned(), Vec::new())),
            None => commands
                .last_mut()
                .expect("output before any command")
                .1
                .push(line.to_owned()),
        }
    }
    commands
}

fn json_fields(line: &str) -> Option<Vec<String>> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    Some(value.as_object()?.keys().cloned().collect())
}

#[test]
fn every_readme_command_runs_on_the_testbed() {
    let tb = Testbed::get();
    // The tour deploys and destroys on the shared nodes.
    let _nodes = tb.exclusive();
    let commands = readme_commands();
    assert!(
        commands.len() >= 15,
        "the README lost its tour: {commands:?}"
    );
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_baleine-deploy"))
        .parent()
        .unwrap();
    let path = format!(
        "{}:{}:{}",
        bin_dir.display(),
        tb.dir.join("bin").display(),
        std::env::var("PATH").unwrap()
    );
    let work = std::env::temp_dir().join(common::unique("readme"));
    std::fs::create_dir_all(&work).unwrap();
    std::os::unix::fs::symlink(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests"),
        work.join("tests"),
    )
    .unwrap();
    // The tour saves tour:v1 and tour:v2, which a save refuses to
    // overwrite: a tour run before on this testbed leaves them, so go.
    let _ = Command::new("bash")
        .args(["-c", "baleine-list tour | baleine-rmi -y"])
        .env("PATH", &path)
        .env("BALEINE_CONFIG", tb.baleine_conf())
        .output();
    for (command, sample) in commands {
        let out = Command::new("bash")
            .args(["-o", "pipefail", "-c", &command])
            .current_dir(&work)
            .env("PATH", &path)
            .env("BALEINE_CONFIG", tb.baleine_conf())
            .env("BALEINE_TESTBED_DIR", &tb.dir)
            .env_remove("NODES")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let expected_status = command
            .rsplit_once("# exits ")
            .map_or(0, |(_, n)| n.trim().parse().unwrap());
        assert_eq!(
            out.status.code(),
            Some(expected_status),
            "README command: {command}\n{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        if let Some(expected) = sample.first().and_then(|l| json_fields(l)) {
            let first = stdout.lines().next().unwrap_or_default();
            assert_eq!(
                json_fields(first),
                Some(expected),
                "{command}: the README shows other fields than it prints:\n{stdout}"
            );
            assert_eq!(
                stdout.lines().count(),
                sample.len(),
                "{command}: the README shows another number of lines:\n{stdout}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(work);
}
