//! Registry credentials as `docker login` left them: `$DOCKER_CONFIG` (else ~/.docker), auths, credsStore and credHelpers.
//!
//! Read with the `docker_credential` crate, which follows Docker's own
//! lookup (credential helpers included) rather than a partial copy of it.

use docker_credential::DockerCredential;

/// The user name and password `docker login` stored for `host`, if any.
pub fn docker_login(host: &str) -> Option<(String, String)> {
    match docker_credential::get_credential(host) {
        Ok(DockerCredential::UsernamePassword(user, password)) => Some((user, password)),
        Ok(DockerCredential::IdentityToken(_)) => {
            log::warn!("docker login holds an identity token for {host}, which baleine cannot use");
            None
        }
        Err(e) => {
            log::debug!("no docker login credentials for {host}: {e}");
            None
        }
    }
}

/// The same lookup over a given config.json text (no helper is run for
/// `auths` entries), for tests.
pub fn from_config_text(text: &str, host: &str) -> Option<(String, String)> {
    match docker_credential::get_credential_from_reader(text.as_bytes(), host) {
        Ok(DockerCredential::UsernamePassword(user, password)) => Some((user, password)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auths_entries_match_with_or_without_a_scheme() {
        let config = r#"{"auths":{"https://faraday.repo:5000/v1/":{"auth":"dXNlcjpwYXNz"}}}"#;
        assert_eq!(
            from_config_text(config, "faraday.repo:5000"),
            Some(("user".into(), "pass".into()))
        );
        assert_eq!(from_config_text(config, "other.repo"), None);
    }

    #[test]
    fn a_password_may_hold_colons_and_bad_entries_give_nothing() {
        let config = r#"{"auths":{"r.example":{"auth":"dTpwOmE6Yg=="}}}"#;
        assert_eq!(
            from_config_text(config, "r.example"),
            Some(("u".into(), "p:a:b".into()))
        );
        assert_eq!(
            from_config_text(r#"{"auths":{"r.example":{"auth":"!!"}}}"#, "r.example"),
            None
        );
        assert_eq!(from_config_text("not json", "r.example"), None);
    }
}
