//! The completion backend: `BALEINE_COMPLETE=nodes|images|repositories TOOL` prints what the shell completions offer.

use crate::domain::config;
use crate::domain::reference::{target_image, validate_repository_name, validate_tag};
use crate::remote::registry::Registry;
use std::time::Duration;

/// `BALEINE_COMPLETE=nodes|images|repositories TOOL`: the candidates the
/// shell completions offer, one a line. Never slow: a registry gets about
/// two seconds in all, and an unusable configuration offers nothing.
pub fn candidates(kind: &str) {
    let Ok(config) = config::load() else { return };
    match kind {
        "nodes" => config.all_nodes.iter().for_each(|node| println!("{node}")),
        "images" | "repositories" => {
            let budget = Duration::from_secs(2);
            let deadline = std::time::Instant::now() + budget;
            let registry = Registry::from_config_with_timeout(&config, budget).until(deadline);
            // Names come from a registry, perhaps a hostile one: only names
            // Docker's grammar allows (no shell metacharacter) are offered.
            let catalog = registry.catalog().unwrap_or_default();
            for repository in catalog
                .into_iter()
                .filter(|r| validate_repository_name(r).is_ok())
            {
                if kind == "repositories" {
                    println!("{repository}");
                    continue;
                }
                if std::time::Instant::now() >= deadline {
                    break;
                }
                let tags = registry.tags(&repository).unwrap_or_default();
                for tag in tags.into_iter().filter(|t| validate_tag(t).is_ok()) {
                    println!(
                        "{}",
                        target_image(&config.save_url, config.save_port, &repository, &tag)
                    );
                }
            }
        }
        _ => {}
    }
}
