//! The registry client: Docker Registry HTTP API v2 over ureq, complete listings and Basic/Bearer auth.

use crate::domain::config::Config;
use serde_json::Value;
use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;
use ureq::http::Response;
use ureq::tls::{parse_pem, PemItem, RootCerts, TlsConfig};
use ureq::{Agent, Body};

/// Catalogs, tag lists and manifests larger than this are refused: a
/// misbehaving server must not make us allocate without bound.
const MAX_BODY: u64 = 16 * 1024 * 1024;
/// Entries asked for per page; registries may return fewer, we follow `Link`.
const PAGE: usize = 100;
/// A catalog or tag list longer than this is refused (R2Lab's has hundreds).
const MAX_ENTRIES: usize = 100_000;
/// Pages followed at most for one listing.
const MAX_PAGES: usize = 10_000;
/// Every manifest kind we read: Docker v2 and OCI, images and indexes.
pub const MANIFEST_TYPES: &str = "application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json";
const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// A registry request that failed: the URL and why, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryError {
    pub url: String,
    pub cause: String,
    /// The registry answered 404 (unknown repository, tag or manifest).
    pub not_found: bool,
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.url, self.cause)
    }
}

impl std::error::Error for RegistryError {}

fn error(url: &str, cause: impl Into<String>) -> RegistryError {
    RegistryError {
        url: url.to_owned(),
        cause: cause.into(),
        not_found: false,
    }
}

/// A manifest as served, with the digest the registry gave it.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub digest: Option<String>,
    pub media_type: String,
    pub body: Value,
}

impl Manifest {
    pub fn is_index(&self) -> bool {
        self.media_type.contains("manifest.list") || self.media_type.contains("image.index")
    }
}

/// One registry, reached from the gateway.
pub struct Registry {
    base: String,
    agent: Agent,
    /// `user:password`, base64-encoded, for Basic auth and token requests.
    basic: Option<String>,
    /// Bearer tokens already obtained, by scope.
    tokens: Mutex<HashMap<String, String>>,
    /// When a listing must give up, whatever its pages (see `until`).
    deadline: Option<std::time::Instant>,
}

impl Registry {
    /// `base` is `protocol://host[:port]`.
    pub fn new(base: &str, credentials: Option<(String, String)>) -> Registry {
        Registry::with_timeout(base, credentials, Duration::from_secs(60))
    }

    /// A registry whose every request gives up after `timeout`.
    pub fn with_timeout(
        base: &str,
        credentials: Option<(String, String)>,
        timeout: Duration,
    ) -> Registry {
        let agent = Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(timeout.min(Duration::from_secs(10))))
            .timeout_global(Some(timeout))
            .tls_config(TlsConfig::builder().root_certs(system_roots()).build())
            .build()
            .new_agent();
        Registry {
            base: base.trim_end_matches('/').to_owned(),
            agent,
            basic: credentials.map(|(user, password)| basic_credentials(&user, &password)),
            tokens: Mutex::new(HashMap::new()),
            deadline: None,
        }
    }

    /// The registry's delete instance (`REGISTRY_ADMIN_URL`): a unix socket
    /// (`unix:/run/baleine-admin/registry.sock`), which only the members of
    /// the group that may enter its directory can reach, or `host:port`.
    pub fn admin(address: &str) -> Registry {
        let Some(socket) = address.strip_prefix("unix:") else {
            return Registry::new(&format!("http://{address}"), None);
        };
        let timeout = Duration::from_secs(60);
        let config = Agent::config_builder()
            .http_status_as_error(false)
            // What the environment says of proxies is for TCP, never for
            // our own socket.
            .proxy(None)
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_global(Some(timeout))
            .build();
        let agent = Agent::with_parts(
            config,
            unix_socket::Connector(socket.into()),
            ureq::unversioned::resolver::DefaultResolver::default(),
        );
        Registry {
            // The host is a name for the request line: the socket is the way.
            base: "http://localhost".into(),
            agent,
            basic: None,
            tokens: Mutex::new(HashMap::new()),
            deadline: None,
        }
    }

    /// The same registry, but everything ends by `deadline`: each request
    /// gets only the time left, and a listing past it is refused (a timeout
    /// bounds one request, and a registry can answer each page just in
    /// time: Tab completion must never hang).
    pub fn until(mut self, deadline: std::time::Instant) -> Registry {
        self.deadline = Some(deadline);
        self
    }

    /// The registry of `REGISTRY_PROTOCOL` + `REGISTRY_URL`, with credentials
    /// from `REGISTRY_USER`/`REGISTRY_PASSWORD`, else from `docker login`'s
    /// `~/.docker/config.json`.
    pub fn from_config(config: &Config) -> Registry {
        Registry::from_config_with_timeout(config, Duration::from_secs(60))
    }

    pub fn from_config_with_timeout(config: &Config, timeout: Duration) -> Registry {
        let base = format!("{}{}", config.registry_protocol, config.registry_url);
        let credentials = match (&config.registry_user, &config.registry_password) {
            (Some(user), Some(password)) => Some((user.clone(), password.clone())),
            (Some(user), None) => Some((user.clone(), String::new())),
            _ => crate::remote::credentials::docker_login(&config.registry_url),
        };
        Registry::with_timeout(&base, credentials, timeout)
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Every repository in the catalog, following pagination to the end.
    pub fn catalog(&self) -> Result<Vec<String>, RegistryError> {
        self.paginated(
            &format!("{}/v2/_catalog?n={PAGE}", self.base),
            "repositories",
        )
    }

    /// Every tag of `repository`, following pagination to the end.
    pub fn tags(&self, repository: &str) -> Result<Vec<String>, RegistryError> {
        self.paginated(
            &format!("{}/v2/{repository}/tags/list?n={PAGE}", self.base),
            "tags",
        )
    }

    /// The digest the registry serves for `repository:reference`, or None if
    /// it serves nothing there (404).
    pub fn manifest_digest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<Option<String>, RegistryError> {
        let url = format!("{}/v2/{repository}/manifests/{reference}", self.base);
        match self.send("HEAD", &url, Some(MANIFEST_TYPES)) {
            Ok(response) => Ok(Some(
                header(&response, "docker-content-digest").ok_or_else(|| {
                    error(
                        &url,
                        "the registry gave no Docker-Content-Digest for this manifest",
                    )
                })?,
            )),
            Err(e) if e.not_found => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Deletes the manifest `digest` of `repository`, and so every tag that
    /// names it (a registry with deletes enabled answers 202).
    pub fn delete_manifest(&self, repository: &str, digest: &str) -> Result<(), RegistryError> {
        let url = format!("{}/v2/{repository}/manifests/{digest}", self.base);
        self.send("DELETE", &url, None).map(drop)
    }

    pub fn manifest(&self, repository: &str, reference: &str) -> Result<Manifest, RegistryError> {
        let url = format!("{}/v2/{repository}/manifests/{reference}", self.base);
        let mut response = self.send("GET", &url, Some(MANIFEST_TYPES))?;
        let digest = header(&response, "docker-content-digest");
        let content_type = header(&response, "content-type").unwrap_or_default();
        let body = read_json(&url, &mut response)?;
        let media_type = body["mediaType"]
            .as_str()
            .map(String::from)
            .unwrap_or(content_type);
        Ok(Manifest {
            digest,
            media_type,
            body,
        })
    }

    /// A JSON blob (an image config).
    pub fn blob_json(&self, repository: &str, digest: &str) -> Result<Value, RegistryError> {
        let url = format!("{}/v2/{repository}/blobs/{digest}", self.base);
        let mut response = self.send("GET", &url, None)?;
        read_json(&url, &mut response)
    }

    fn paginated(&self, first: &str, field: &str) -> Result<Vec<String>, RegistryError> {
        let mut all = Vec::new();
        let mut next = Some(first.to_owned());
        let mut seen = std::collections::HashSet::new();
        while let Some(url) = next.take() {
            if !seen.insert(url.clone()) {
                return Err(error(
                    &url,
                    "the registry's pagination loops back on itself",
                ));
            }
            // A registry that paginates for ever must not hold us for ever.
            if crate::domain::stop::stopping() {
                return Err(error(&url, "interrupted"));
            }
            if self
                .deadline
                .is_some_and(|d| std::time::Instant::now() >= d)
            {
                return Err(error(&url, "out of time for this listing"));
            }
            if seen.len() > MAX_PAGES || all.len() > MAX_ENTRIES {
                return Err(error(
                    &url,
                    format!(
                        "more than {MAX_ENTRIES} entries or {MAX_PAGES} pages: refused \
                         (a registry that paginates without end?)"
                    ),
                ));
            }
            let mut response = self.send("GET", &url, None)?;
            let link = header(&response, "link");
            let page = read_json(&url, &mut response)?;
            match &page[field] {
                Value::Array(items) => {
                    for item in items {
                        let name = item.as_str().ok_or_else(|| {
                            error(&url, format!("non-string entry in \"{field}\""))
                        })?;
                        all.push(name.to_owned());
                    }
                }
                // A repository whose tags were all deleted lists `null`.
                Value::Null => {}
                _ => return Err(error(&url, format!("malformed JSON: no \"{field}\" list"))),
            }
            next = match link.and_then(|l| next_link(&l)) {
                None => None,
                Some(target) => {
                    let target = self.absolute(&url, &target);
                    // Our credentials go to our registry only, and only its
                    // answers make the listing.
                    if origin(&target) != origin(&self.base) {
                        return Err(error(
                            &url,
                            format!(
                                "the next page is on another host ({}): refused",
                                origin(&target)
                            ),
                        ));
                    }
                    Some(target)
                }
            };
        }
        Ok(all)
    }

    /// Resolves a `Link` target against the URL it came with.
    fn absolute(&self, current: &str, target: &str) -> String {
        if target.starts_with("http://") || target.starts_with("https://") {
            return target.to_owned();
        }
        let origin_end = current.find("://").map_or(0, |i| i + 3);
        let origin = match current[origin_end..].find('/') {
            Some(slash) => &current[..origin_end + slash],
            None => current,
        };
        format!("{origin}{target}")
    }

    /// Sends a request, answering one auth challenge (Basic or Bearer) if the
    /// registry makes one; maps HTTP failures to clear errors.
    fn send(
        &self,
        method: &str,
        url: &str,
        accept: Option<&str>,
    ) -> Result<Response<Body>, RegistryError> {
        let mut authorization = self.basic.as_ref().map(|b| format!("Basic {b}"));
        for attempt in 0..2 {
            let response = self.call(method, url, accept, authorization.as_deref())?;
            let status = response.status().as_u16();
            if status == 401 && attempt == 0 {
                if let Some(challenge) = header(&response, "www-authenticate") {
                    if let Some(bearer) = parse_bearer_challenge(&challenge) {
                        authorization = Some(format!("Bearer {}", self.token(url, &bearer)?));
                        continue;
                    }
                }
            }
            return match status {
                200..=299 => Ok(response),
                401 if self.basic.is_none() => Err(error(
                    url,
                    "HTTP 401 Unauthorized: this registry needs credentials \
                     (REGISTRY_USER and REGISTRY_PASSWORD, or docker login)",
                )),
                401 => Err(error(
                    url,
                    "HTTP 401 Unauthorized: the registry refused these credentials",
                )),
                403 => Err(error(
                    url,
                    "HTTP 403 Forbidden: these credentials may not read this",
                )),
                404 => Err(RegistryError {
                    not_found: true,
                    ..error(
                        url,
                        "HTTP 404 Not Found (no such repository, tag or manifest)",
                    )
                }),
                other => Err(error(url, format!("HTTP {other} {}", reason(other)))),
            };
        }
        Err(error(url, "HTTP 401 Unauthorized even with a fresh token"))
    }

    fn call(
        &self,
        method: &str,
        url: &str,
        accept: Option<&str>,
        authorization: Option<&str>,
    ) -> Result<Response<Body>, RegistryError> {
        let mut request = match method {
            "HEAD" => self.agent.head(url),
            "DELETE" => self.agent.delete(url),
            _ => self.agent.get(url),
        };
        if let Some(accept) = accept {
            request = request.header("Accept", accept);
        }
        if let Some(auth) = authorization {
            request = request.header("Authorization", auth);
        }
        // Under a deadline (`until`), a request gets only the time left.
        if let Some(deadline) = self.deadline {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(error(url, "out of time for this listing"));
            }
            request = request.config().timeout_global(Some(left)).build();
        }
        let result = request.call();
        result.map_err(|e| error(url, describe(&e)))
    }

    /// The Bearer token flow Docker Hub and most registries use: ask the
    /// realm for a token for this service and scope (with our credentials if
    /// we have some), and remember it.
    fn token(&self, url: &str, challenge: &BearerChallenge) -> Result<String, RegistryError> {
        let scope = challenge.scope.clone().unwrap_or_default();
        if let Some(token) = self
            .tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&scope)
        {
            return Ok(token.clone());
        }
        let token_url = challenge.realm.clone();
        // ureq encodes the query: a scope holds ':' and '/'.
        let query: Vec<(&str, &str)> =
            [("service", &challenge.service), ("scope", &challenge.scope)]
                .into_iter()
                .filter_map(|(key, value)| Some((key, value.as_deref()?)))
                .collect();
        // Our password goes to the registry's own origin, or to a token
        // service over HTTPS; a realm on another host in plain HTTP gets an
        // anonymous request.
        let safe_realm =
            origin(&token_url) == origin(&self.base) || token_url.starts_with("https://");
        let authorization = self
            .basic
            .as_ref()
            .filter(|_| safe_realm)
            .map(|b| format!("Basic {b}"));
        let mut request = self.agent.get(&token_url).query_pairs(query);
        if let Some(auth) = &authorization {
            request = request.header("Authorization", auth);
        }
        let mut response = request
            .call()
            .map_err(|e| error(&token_url, describe(&e)))?;
        if !response.status().is_success() {
            return Err(error(
                url,
                format!(
                    "token request to {token_url} answered HTTP {}",
                    response.status().as_u16()
                ),
            ));
        }
        let body = read_json(&token_url, &mut response)?;
        let token = body["token"]
            .as_str()
            .or_else(|| body["access_token"].as_str())
            .ok_or_else(|| error(&token_url, "the token answer has no token"))?
            .to_owned();
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(scope, token.clone());
        Ok(token)
    }
}

fn header(response: &Response<Body>, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(String::from)
}

fn read_json(url: &str, response: &mut Response<Body>) -> Result<Value, RegistryError> {
    let text = response
        .body_mut()
        .with_config()
        .limit(MAX_BODY)
        .read_to_string()
        .map_err(|e| match e {
            ureq::Error::BodyExceedsLimit(_) => error(
                url,
                format!("answer larger than {} MiB, refused", MAX_BODY >> 20),
            ),
            other => error(url, format!("cannot read the answer: {}", describe(&other))),
        })?;
    serde_json::from_str(&text).map_err(|e| error(url, format!("malformed JSON: {e}")))
}

fn describe(e: &ureq::Error) -> String {
    match e {
        ureq::Error::HostNotFound => "host not found".into(),
        ureq::Error::Timeout(_) => "no answer in time".into(),
        ureq::Error::Io(io) => format!("cannot reach the registry: {io}"),
        other => other.to_string(),
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        405 => "Method Not Allowed",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// The system's trust roots (Debian's bundle), so HTTPS registries signed by
/// a CA the machine trusts work; Mozilla's bundle where there is none.
fn system_roots() -> RootCerts {
    let Ok(pem) = std::fs::read(SYSTEM_ROOTS) else {
        return RootCerts::WebPki;
    };
    let certs: Vec<_> = parse_pem(&pem)
        .filter_map(|item| match item {
            Ok(PemItem::Certificate(cert)) => Some(cert),
            _ => None,
        })
        .collect();
    if certs.is_empty() {
        RootCerts::WebPki
    } else {
        RootCerts::Specific(std::sync::Arc::new(certs))
    }
}

/// The parts of a `WWW-Authenticate: Bearer realm=…,service=…,scope=…` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BearerChallenge {
    pub realm: String,
    pub service: Option<String>,
    pub scope: Option<String>,
}

pub fn parse_bearer_challenge(header: &str) -> Option<BearerChallenge> {
    let rest = header
        .trim()
        .strip_prefix("Bearer ")
        .or_else(|| header.trim().strip_prefix("bearer "))?;
    let mut params: HashMap<String, String> = HashMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let value: String = if chars.peek() == Some(&'"') {
            chars.next();
            let mut value = String::new();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
            value
        } else {
            chars
                .by_ref()
                .take_while(|c| *c != ',')
                .collect::<String>()
                .trim()
                .to_owned()
        };
        params.insert(key.trim().to_ascii_lowercase(), value);
    }
    Some(BearerChallenge {
        realm: params.remove("realm")?,
        service: params.remove("service"),
        scope: params.remove("scope"),
    })
}

/// The `rel="next"` target of a `Link` header.
pub fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let is_next = params.split(';').any(|p| {
            let p = p.trim().replace(' ', "");
            p == "rel=\"next\"" || p == "rel=next"
        });
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        is_next.then(|| target.to_owned())
    })
}

/// `scheme://host[:port]` of a URL, lowercased: what credentials are tied to.
pub fn origin(url: &str) -> String {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let end = url[after_scheme..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| after_scheme + i);
    url[..end].to_ascii_lowercase()
}

/// The value of a Basic `Authorization` header, less the `Basic ` prefix.
fn basic_credentials(user: &str, password: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
}

/// HTTP over a unix socket, as a ureq transport: only the connection is
/// ours, the protocol is ureq's. ureq's transport API is exempt from semver
/// (`unversioned`): Cargo.toml pins its minor version.
mod unix_socket {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    use std::path::PathBuf;
    use ureq::unversioned::transport::{
        Buffers, ConnectionDetails, LazyBuffers, NextTimeout, Transport,
    };

    #[derive(Debug)]
    pub struct Connector(pub PathBuf);

    impl ureq::unversioned::transport::Connector<()> for Connector {
        type Out = Stream;

        fn connect(
            &self,
            details: &ConnectionDetails,
            _: Option<()>,
        ) -> Result<Option<Stream>, ureq::Error> {
            let stream = UnixStream::connect(&self.0).map_err(|e| {
                ureq::Error::Io(std::io::Error::new(
                    e.kind(),
                    format!("{}: {e}", self.0.display()),
                ))
            })?;
            let buffers = LazyBuffers::new(
                details.config.input_buffer_size(),
                details.config.output_buffer_size(),
            );
            Ok(Some(Stream { stream, buffers }))
        }
    }

    #[derive(Debug)]
    pub struct Stream {
        stream: UnixStream,
        buffers: LazyBuffers,
    }

    /// An I/O error, or ureq's timeout when it is one.
    fn failed(e: std::io::Error, timeout: &NextTimeout) -> ureq::Error {
        match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                ureq::Error::Timeout(timeout.reason)
            }
            _ => ureq::Error::Io(e),
        }
    }

    impl Transport for Stream {
        fn buffers(&mut self) -> &mut dyn Buffers {
            &mut self.buffers
        }

        fn transmit_output(
            &mut self,
            amount: usize,
            timeout: NextTimeout,
        ) -> Result<(), ureq::Error> {
            let timeout = timeout.for_write();
            if timeout.after.is_zero() {
                return Err(ureq::Error::Timeout(timeout.reason));
            }
            self.stream
                .set_write_timeout(timeout.not_zero().map(|t| *t))
                .map_err(ureq::Error::Io)?;
            let output = &self.buffers.output()[..amount];
            self.stream
                .write_all(output)
                .map_err(|e| failed(e, &timeout))
        }

        fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
            let timeout = timeout.for_read();
            if timeout.after.is_zero() {
                return Err(ureq::Error::Timeout(timeout.reason));
            }
            self.stream
                .set_read_timeout(timeout.not_zero().map(|t| *t))
                .map_err(ureq::Error::Io)?;
            let read = loop {
                match self.stream.read(self.buffers.input_append_buf()) {
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    other => break other.map_err(|e| failed(e, &timeout))?,
                }
            };
            self.buffers.input_appended(read);
            Ok(read > 0)
        }

        /// One request per connection: never taken from a pool stale.
        fn is_open(&mut self) -> bool {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenges_as_docker_hub_sends_them() {
        let challenge = parse_bearer_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
        )
        .unwrap();
        assert_eq!(challenge.realm, "https://auth.docker.io/token");
        assert_eq!(challenge.service.as_deref(), Some("registry.docker.io"));
        assert_eq!(
            challenge.scope.as_deref(),
            Some("repository:library/busybox:pull")
        );
        assert_eq!(parse_bearer_challenge(r#"Basic realm="x""#), None);
        assert_eq!(
            parse_bearer_challenge("Bearer service=x"),
            None,
            "no realm, no flow"
        );
    }

    #[test]
    fn link_headers_give_the_next_page() {
        assert_eq!(
            next_link(r#"</v2/_catalog?last=b&n=100>; rel="next""#).as_deref(),
            Some("/v2/_catalog?last=b&n=100")
        );
        assert_eq!(
            next_link(r#"<https://r/x?n=2>; rel="prev", <https://r/y?n=2>; rel="next""#).as_deref(),
            Some("https://r/y?n=2")
        );
        assert_eq!(next_link(r#"</v2/_catalog?last=b>; rel="prev""#), None);
    }

    #[test]
    fn relative_links_resolve_against_the_registry() {
        let registry = Registry::new("http://127.0.0.1:5000", None);
        assert_eq!(
            registry.absolute(
                "http://127.0.0.1:5000/v2/_catalog?n=100",
                "/v2/_catalog?last=a&n=100"
            ),
            "http://127.0.0.1:5000/v2/_catalog?last=a&n=100"
        );
    }

    #[test]
    fn origins_are_scheme_host_and_port() {
        assert_eq!(
            origin("http://Faraday:80/v2/_catalog?n=1"),
            "http://faraday:80"
        );
        assert_eq!(origin("https://r.example"), "https://r.example");
        assert_ne!(origin("http://a/v2"), origin("http://a.evil/v2"));
        assert_ne!(origin("http://a/v2"), origin("https://a/v2"));
    }

    #[test]
    fn basic_credentials_are_standard_base64() {
        assert_eq!(basic_credentials("user", "pass"), "dXNlcjpwYXNz");
        assert_eq!(basic_credentials("a", ""), "YTo=");
    }
}
