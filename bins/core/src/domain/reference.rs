//! Docker image references (`registry:5000/team/image:tag@sha256:…`) checked by Docker's grammar, their digests, pull policy and the names images are saved under.

use std::fmt;
use std::str::FromStr;

/// Docker's limit on the name part (domain and path).
const MAX_NAME_LEN: usize = 255;
const MAX_TAG_LEN: usize = 128;
/// Docker refuses shorter digests: they could not identify content safely.
const MIN_DIGEST_HEX_LEN: usize = 32;
/// Algorithms Docker knows produce digests of a fixed length, in lowercase hex.
const KNOWN_DIGEST_LENGTHS: [(&str, usize); 3] = [("sha256", 64), ("sha384", 96), ("sha512", 128)];
/// What Docker pulls when no tag is given.
pub const DEFAULT_TAG: &str = "latest";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferenceError {
    /// What was being parsed: "image reference", "repository name", ...
    pub subject: &'static str,
    pub input: String,
    pub reason: &'static str,
}

impl ReferenceError {
    fn new(subject: &'static str, input: &str, reason: &'static str) -> Self {
        Self {
            subject,
            input: input.to_owned(),
            reason,
        }
    }
}

impl fmt::Display for ReferenceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid {} {:?}: {}",
            self.subject, self.input, self.reason
        )
    }
}

impl std::error::Error for ReferenceError {}

/// A parsed `[domain/]path[:tag][@digest]`. Only [`ImageRef::parse`] and
/// [`ImageRef::with_digest`] guarantee the parts are valid.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    pub domain: Option<String>,
    pub path: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl ImageRef {
    pub fn parse(s: &str) -> Result<ImageRef, ReferenceError> {
        parse_reference(s).map_err(|reason| ReferenceError::new("image reference", s, reason))
    }

    /// The name without tag or digest, e.g. `faraday.repo:5000/a/b`.
    pub fn repository(&self) -> String {
        match &self.domain {
            Some(domain) => format!("{domain}/{}", self.path),
            None => self.path.clone(),
        }
    }

    /// The same repository pinned to `digest`; the tag is dropped because the
    /// digest alone decides which image is meant.
    pub fn with_digest(&self, digest: &str) -> Result<ImageRef, ReferenceError> {
        check_digest(digest).map_err(|reason| ReferenceError::new("digest", digest, reason))?;
        Ok(ImageRef {
            tag: None,
            digest: Some(digest.to_owned()),
            ..self.clone()
        })
    }
}

impl FromStr for ImageRef {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.repository())?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// Checks a repository name without tag or digest (`[domain/]path`).
pub fn validate_repository_name(name: &str) -> Result<(), ReferenceError> {
    split_domain(name)
        .map(drop)
        .map_err(|reason| ReferenceError::new("repository name", name, reason))
}

/// Splits `NAME[:TAG]` into the repository and its tag, [`DEFAULT_TAG`] if none.
pub fn split_name_tag(s: &str) -> Result<(String, String), ReferenceError> {
    let invalid = |reason| ReferenceError::new("image name", s, reason);
    if s.contains('@') {
        return Err(invalid("a digest is not allowed here"));
    }
    let image = parse_reference(s).map_err(invalid)?;
    let tag = image.tag.clone().unwrap_or_else(|| DEFAULT_TAG.to_owned());
    Ok((image.repository(), tag))
}

fn parse_reference(s: &str) -> Result<ImageRef, &'static str> {
    if s.is_empty() {
        return Err("empty");
    }
    let (name_and_tag, digest) = match s.split_once('@') {
        Some((name_and_tag, digest)) => (name_and_tag, Some(digest)),
        None => (s, None),
    };
    // A colon followed later by a slash is a registry port, not a tag.
    let (name, tag) = match name_and_tag.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name, Some(tag)),
        _ => (name_and_tag, None),
    };
    let (domain, path) = split_domain(name)?;
    if let Some(tag) = tag {
        check_tag(tag)?;
    }
    if let Some(digest) = digest {
        check_digest(digest)?;
    }
    Ok(ImageRef {
        domain: domain.map(str::to_owned),
        path: path.to_owned(),
        tag: tag.map(str::to_owned),
        digest: digest.map(str::to_owned),
    })
}

/// Validates a name and splits off its registry, using Docker's rule for
/// telling `registry/image` from `user/image`.
fn split_domain(name: &str) -> Result<(Option<&str>, &str), &'static str> {
    if name.is_empty() {
        return Err("missing repository name");
    }
    if name.len() > MAX_NAME_LEN {
        return Err("repository name is longer than 255 characters");
    }
    let (domain, path) = match name.split_once('/') {
        Some((first, rest)) if looks_like_domain(first) => {
            check_domain(first)?;
            (Some(first), rest)
        }
        _ => (None, name),
    };
    check_path(path)?;
    Ok((domain, path))
}

fn looks_like_domain(component: &str) -> bool {
    component.contains(['.', ':'])
        || component == "localhost"
        || component.bytes().any(|b| b.is_ascii_uppercase())
}

fn check_domain(domain: &str) -> Result<(), &'static str> {
    let (host_is_valid, after_host) = match domain.strip_prefix('[') {
        Some(bracketed) => match bracketed.split_once(']') {
            Some((address, after)) => (
                !address.is_empty() && address.bytes().all(|b| b.is_ascii_hexdigit() || b == b':'),
                after,
            ),
            None => (false, ""),
        },
        None => {
            let (host, after) = domain.split_at(domain.find(':').unwrap_or(domain.len()));
            (host.split('.').all(is_domain_component), after)
        }
    };
    if !host_is_valid {
        return Err("invalid registry host");
    }
    match after_host.strip_prefix(':') {
        None if after_host.is_empty() => Ok(()),
        Some(port) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => Ok(()),
        _ => Err("invalid registry port"),
    }
}

fn is_domain_component(component: &str) -> bool {
    let is_alphanumeric = |c: char| c.is_ascii_alphanumeric();
    component.starts_with(is_alphanumeric)
        && component.ends_with(is_alphanumeric)
        && component.chars().all(|c| is_alphanumeric(c) || c == '-')
}

fn check_path(path: &str) -> Result<(), &'static str> {
    let is_valid = |path: &str| path.split('/').all(is_path_component);
    if is_valid(path) {
        Ok(())
    } else if is_valid(&path.to_ascii_lowercase()) {
        Err("repository name must be lowercase")
    } else if path.split('/').any(str::is_empty) {
        Err("empty component in repository name")
    } else {
        Err("repository name components must be lowercase letters and digits separated by '.', '_', '__' or dashes")
    }
}

fn is_path_component(component: &str) -> bool {
    let is_alphanumeric = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    // What lies between runs of alphanumerics must each be a single separator.
    component.starts_with(is_alphanumeric)
        && component.ends_with(is_alphanumeric)
        && component
            .split(is_alphanumeric)
            .filter(|separator| !separator.is_empty())
            .all(|separator| {
                matches!(separator, "." | "_" | "__") || separator.bytes().all(|b| b == b'-')
            })
}

/// Checks a tag against Docker's grammar.
pub fn validate_tag(tag: &str) -> Result<(), ReferenceError> {
    check_tag(tag).map_err(|reason| ReferenceError::new("tag", tag, reason))
}

fn check_tag(tag: &str) -> Result<(), &'static str> {
    let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut bytes = tag.bytes();
    let is_valid = tag.len() <= MAX_TAG_LEN
        && bytes.next().is_some_and(is_word)
        && bytes.all(|b| is_word(b) || b == b'.' || b == b'-');
    if is_valid {
        Ok(())
    } else {
        Err("invalid tag (up to 128 letters, digits, '_', '.' and '-', not starting with '.' or '-')")
    }
}

fn check_digest(digest: &str) -> Result<(), &'static str> {
    const INVALID: &str =
        "invalid digest (expected ALGORITHM:HEX, e.g. sha256: and 64 lowercase hex digits)";
    let (algorithm, hex) = digest.split_once(':').ok_or(INVALID)?;
    let algorithm_is_valid = algorithm.split(['-', '_', '+', '.']).all(|part| {
        part.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
            && part
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    });
    let hex_is_valid = match KNOWN_DIGEST_LENGTHS
        .iter()
        .find(|(known, _)| *known == algorithm)
    {
        Some(&(_, length)) => {
            hex.len() == length && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        }
        None => hex.len() >= MIN_DIGEST_HEX_LEN && hex.bytes().all(|b| b.is_ascii_hexdigit()),
    };
    if algorithm_is_valid && hex_is_valid {
        Ok(())
    } else {
        Err(INVALID)
    }
}

/// When to pull the image before running it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    Always,
    Missing,
    Never,
}

impl FromStr for PullPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "always" => Ok(PullPolicy::Always),
            "missing" => Ok(PullPolicy::Missing),
            "never" => Ok(PullPolicy::Never),
            other => Err(format!(
                "--pull must be always, missing or never, not {other:?}"
            )),
        }
    }
}

/// Picks the repo digest of `image` among an image's RepoDigests (a JSON list
/// like `["busybox@sha256:…"]`, names in Docker's short form): the entry of
/// its own repository, or none.
pub fn repo_digest(image: &ImageRef, repo_digests_json: &str) -> Option<String> {
    let list: Vec<String> = serde_json::from_str(repo_digests_json).ok()?;
    let wanted = short_name(&image.repository());
    let digest_of = |entry: &String| {
        entry
            .split_once('@')
            .map(|(name, d)| (short_name(name), d.to_owned()))
    };
    // Only the image's own repository: a node that names another one's
    // digest (confused, or lying) must not choose what the fleet runs.
    list.iter()
        .filter_map(digest_of)
        .find(|(name, _)| *name == wanted)
        .map(|(_, digest)| digest)
}

/// Docker's short form of a repository name: `docker.io/library/x` → `x`.
pub fn short_name(name: &str) -> String {
    let name = name.strip_prefix("docker.io/").unwrap_or(name);
    name.strip_prefix("library/").unwrap_or(name).to_owned()
}

/// A name to store an image under in the repo registry, `NAME[:TAG]` (tag
/// `latest` if none): what baleine-save and baleine-build write to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoName {
    pub name: String,
    pub tag: String,
}

impl RepoName {
    /// Checks `NAME[:TAG]` against Docker's grammar. NAME is a repository
    /// inside SAVE_URL, so a registry host in it is refused.
    pub fn parse(name_tag: &str) -> Result<RepoName, String> {
        let (name, tag) = split_name_tag(name_tag).map_err(|e| e.to_string())?;
        validate_repository_name(&name).map_err(|e| e.to_string())?;
        let first = name.split('/').next().unwrap_or_default();
        if first.contains('.') || first.contains(':') || first == "localhost" {
            return Err(format!(
                "{name_tag:?}: give the repository name only (e.g. myexp:v1); \
                 it is stored in SAVE_URL's registry"
            ));
        }
        Ok(RepoName { name, tag })
    }

    /// Puts the name under SAVE_NAMESPACE (`%u` is `login`, the user's
    /// login name), so that users of a shared registry cannot collide.
    pub fn within(&mut self, namespace: Option<&str>, login: &str) -> Result<(), String> {
        let Some(namespace) = namespace.filter(|n| !n.is_empty()) else {
            return Ok(());
        };
        let namespace = namespace.replace("%u", login);
        let name = format!("{namespace}/{}", self.name);
        validate_repository_name(&name)
            .map_err(|e| format!("SAVE_NAMESPACE {namespace:?}: {e}"))?;
        self.name = name;
        Ok(())
    }
}

/// The node-side name of the saved image: `SAVE_URL[:SAVE_PORT]/NAME:TAG`.
pub fn target_image(save_url: &str, save_port: Option<u16>, name: &str, tag: &str) -> String {
    match save_port {
        Some(port) => format!("{save_url}:{port}/{name}:{tag}"),
        None => format!("{save_url}/{name}:{tag}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn parsed(s: &str) -> ImageRef {
        ImageRef::parse(s).unwrap_or_else(|error| panic!("{error}"))
    }

    fn reason(s: &str) -> &'static str {
        match ImageRef::parse(s) {
            Ok(image) => panic!("{s:?} was accepted as {image:?}"),
            Err(error) => error.reason,
        }
    }

    fn image(
        domain: Option<&str>,
        path: &str,
        tag: Option<&str>,
        digest: Option<&str>,
    ) -> ImageRef {
        ImageRef {
            domain: domain.map(str::to_owned),
            path: path.to_owned(),
            tag: tag.map(str::to_owned),
            digest: digest.map(str::to_owned),
        }
    }

    #[test]
    fn parses_valid_references() {
        let cases = [
            ("busybox", image(None, "busybox", None, None)),
            (
                "library/busybox:latest",
                image(None, "library/busybox", Some("latest"), None),
            ),
            (
                "faraday.repo/foo:v1",
                image(Some("faraday.repo"), "foo", Some("v1"), None),
            ),
            (
                "faraday.repo:5000/a/b-c_d.e:1.0",
                image(Some("faraday.repo:5000"), "a/b-c_d.e", Some("1.0"), None),
            ),
            ("localhost/x", image(Some("localhost"), "x", None, None)),
            (
                "127.0.2.1:80/x:y",
                image(Some("127.0.2.1:80"), "x", Some("y"), None),
            ),
            ("[::1]:5000/x", image(Some("[::1]:5000"), "x", None, None)),
            (
                "Registry.Example/x",
                image(Some("Registry.Example"), "x", None, None),
            ),
            ("a__b/c---d", image(None, "a__b/c---d", None, None)),
            (
                &format!("busybox@{SHA}"),
                image(None, "busybox", None, Some(SHA)),
            ),
            (
                &format!("ubuntu:22.04@{SHA}"),
                image(None, "ubuntu", Some("22.04"), Some(SHA)),
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(parsed(input), expected, "{input}");
            assert_eq!(expected.to_string(), input, "display of {input}");
        }
    }

    #[test]
    fn rejects_invalid_references() {
        let cases = [
            ("", "empty"),
            ("UPPER", "repository name must be lowercase"),
            ("Busybox", "repository name must be lowercase"),
            ("a//b", "empty component in repository name"),
            (":tag", "missing repository name"),
            ("faraday.repo:x/a", "invalid registry port"),
            ("-bad.repo/a", "invalid registry host"),
        ];
        for (input, expected) in cases {
            assert_eq!(reason(input), expected, "{input}");
        }
        for input in ["a:", "a:-bad", "a:.x", &format!("a:{}", "x".repeat(129))] {
            assert!(reason(input).starts_with("invalid tag"), "{input}");
        }
        for input in [
            "a@sha256:short",
            "a@sha256:",
            "a@",
            &format!("a@{}", SHA.to_uppercase()),
            &format!("a@sha256:{}", "A".repeat(64)),
            "a@1x:0123456789abcdef0123456789abcdef",
        ] {
            assert!(reason(input).starts_with("invalid digest"), "{input}");
        }
    }

    #[test]
    fn never_accepts_options_whitespace_or_shell_code() {
        for input in [
            "-x", "a b", " a", "a\n", "a;rm", "a|b", "$(x)", "`x`", "a&", "a>b", "a'b", "x/-y",
            "a..b", "a._b",
        ] {
            assert!(ImageRef::parse(input).is_err(), "{input:?}");
        }
    }

    #[test]
    fn name_length_is_limited() {
        let long = format!("a/{}", "b".repeat(253));
        assert_eq!(parsed(&long).path.len(), 255);
        assert_eq!(
            reason(&format!("{long}b")),
            "repository name is longer than 255 characters"
        );
    }

    #[test]
    fn error_names_the_reference() {
        assert_eq!(
            ImageRef::parse("Busybox").unwrap_err().to_string(),
            "invalid image reference \"Busybox\": repository name must be lowercase"
        );
    }

    #[test]
    fn repository_and_pinning() {
        let image = parsed("faraday.repo:5000/a/b:1.0");
        assert_eq!(image.repository(), "faraday.repo:5000/a/b");
        let pinned = image.with_digest(SHA).map(|pinned| pinned.to_string());
        assert_eq!(pinned, Ok(format!("faraday.repo:5000/a/b@{SHA}")));
        assert_eq!(
            parsed("busybox")
                .with_digest(SHA)
                .map(|pinned| pinned.to_string()),
            Ok(format!("busybox@{SHA}"))
        );
        assert!(parsed("busybox").with_digest("sha256:; rm -rf /").is_err());
    }

    #[test]
    fn repository_names() {
        for name in ["busybox", "faraday.repo:5000/a/b", "localhost/x"] {
            assert_eq!(validate_repository_name(name), Ok(()), "{name}");
        }
        for name in ["", "busybox:latest", "Busybox", "-x", "a b"] {
            assert!(validate_repository_name(name).is_err(), "{name}");
        }
        assert_eq!(
            validate_repository_name("a b").unwrap_err().to_string(),
            "invalid repository name \"a b\": repository name components must be lowercase letters \
             and digits separated by '.', '_', '__' or dashes"
        );
    }

    #[test]
    fn name_and_tag() {
        let split = |s| split_name_tag(s).map_err(|error| error.to_string());
        assert_eq!(split("busybox"), Ok(("busybox".into(), "latest".into())));
        assert_eq!(split("me/img:v2"), Ok(("me/img".into(), "v2".into())));
        assert_eq!(
            split("host:5000/name"),
            Ok(("host:5000/name".into(), "latest".into()))
        );
        assert_eq!(
            split("host:5000/name:t"),
            Ok(("host:5000/name".into(), "t".into()))
        );
        assert!(split("a:").is_err());
        assert_eq!(
            split(&format!("a@{SHA}")),
            Err(format!(
                "invalid image name \"a@{SHA}\": a digest is not allowed here"
            ))
        );
    }

    #[test]
    fn repo_digest_picks_the_entry_of_the_deployed_repository() {
        let busybox = ImageRef::parse("busybox").unwrap();
        let list = r#"["other@sha256:1111","busybox@sha256:2222"]"#;
        assert_eq!(repo_digest(&busybox, list).as_deref(), Some("sha256:2222"));
        let long = ImageRef::parse("docker.io/library/busybox:latest").unwrap();
        assert_eq!(repo_digest(&long, list).as_deref(), Some("sha256:2222"));
        let repo = ImageRef::parse("faraday.repo/x:v1").unwrap();
        assert_eq!(
            repo_digest(&repo, r#"["faraday.repo/x@sha256:3333"]"#).as_deref(),
            Some("sha256:3333")
        );
        assert_eq!(repo_digest(&repo, "[]"), None);
        // Another repository's digest alone is no digest of this one.
        assert_eq!(repo_digest(&busybox, r#"["alpine@sha256:4444"]"#), None);
    }
}
