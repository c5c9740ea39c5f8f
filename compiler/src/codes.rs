//! The registry of diagnostic codes: every code the compiler can emit, with its meaning and fix.
//!
//! Codes are stable: a code is never reused for a different problem. `E0xxx` are errors (the
//! config is refused), `W0xxx` warnings (accepted; `check --deny-warnings` refuses them).

/// One entry of the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeInfo {
    /// The code, e.g. `E0106`.
    pub code: &'static str,
    /// What is wrong.
    pub meaning: &'static str,
    /// How to fix it.
    pub fix: &'static str,
}

macro_rules! codes {
    ($($name:ident = $code:literal, $meaning:literal, $fix:literal;)*) => {
        $(
            #[doc = $meaning]
            pub const $name: &str = $code;
        )*
        /// Every code, in code order.
        pub const ALL: &[CodeInfo] = &[
            $(CodeInfo { code: $code, meaning: $meaning, fix: $fix },)*
        ];
    };
}

codes! {
    SYNTAX = "E0001", "The file is not valid YAML.", "Fix the YAML syntax at the reported position (indentation, quotes, brackets).";
    EMPTY = "E0002", "The file is empty or holds only comments.", "Write the settings into the file, or remove the file.";
    ROOT_NOT_MAP = "E0003", "The document is not a mapping of `key: value` pairs.", "Start the file with top-level keys such as `provider: \"file\"`.";
    DUPLICATE_KEY = "E0004", "A key appears twice in the same mapping.", "Keep one of the two occurrences (YAML keeps only one of them).";
    UNKNOWN_KEY = "E0005", "A key that this section does not know.", "Fix the spelling (see the suggestion) or remove the key.";
    WRONG_TYPE = "E0006", "A value of the wrong type (e.g. a list where a string is expected).", "Write the value with the expected type; quote strings that look like numbers or booleans.";
    MISSING_KEY = "E0007", "A required key is missing.", "Add the key named in the message.";
    NON_STRING_KEY = "E0008", "A mapping key that is not a string.", "Write the key as a string (quote it).";
    YAML_BUDGET = "E0009", "The document exceeds the alias budget (anchors, aliases, alias expansion).", "Flatten the document; do not use YAML aliases to multiply content.";
    GLOBAL_IN_CONFD = "E0010", "A global setting in a conf.d file; only hosts are read from conf.d.", "Move the setting to upstreams.yaml.";
    YAML_TOO_DEEP = "E0011", "The document nests mappings and lists deeper than 48 levels.", "Flatten the structure; no config needs that depth.";
    YAML_TOO_LARGE = "E0012", "The document is too large: more than 400000 YAML nodes (keys, values, list items) or 16 MiB of text.", "Split the hosts over several files in `conf.d/` (each file has its own budget).";
    UNKNOWN_PROVIDER = "E0100", "`provider` is not one of file, consul, kubernetes.", "Use `file`, `consul` or `kubernetes`.";
    MISSING_PROVIDER_SECTION = "E0101", "`provider: consul|kubernetes` without its `consul:`/`kubernetes:` section.", "Add the provider section with its servers and services.";
    BAD_HOST = "E0102", "A virtual host name that is not a valid DNS name, `*.domain` wildcard or `DEFAULT`.", "Use lower-case letters, digits, `-` and `.`; a wildcard is `*.` followed by a domain.";
    DUPLICATE_HOST = "E0103", "A virtual host defined twice in one file (names are case-insensitive).", "Merge the two definitions into one.";
    BAD_PATH = "E0104", "A path that does not start with `/`, escapes the root or carries a query or control characters.", "Write the path as an absolute prefix such as `/api`.";
    DUPLICATE_PATH = "E0105", "Two paths of a host that are the same after normalisation (`/a/` and `/a`).", "Keep one of them.";
    BAD_SERVER = "E0106", "A server that is not `host:port` (IPv4, `[IPv6]` or DNS name).", "Write `10.0.0.1:8080`, `[::1]:8080` or `backend.internal:8080` (no scheme: TLS is detected).";
    BAD_PORT = "E0107", "A server port outside 1..=65535.", "Use a port between 1 and 65535.";
    NO_SERVERS = "E0108", "A path with no servers (and no `redirect_to`).", "List at least one server under `servers`.";
    HEADER_NO_COLON = "E0109", "A header entry without `:` between name and value.", "Write headers as `\"Name:Value\"`.";
    BAD_HEADER_NAME = "E0110", "A header name that is not a valid HTTP token.", "Use letters, digits and `-` in header names.";
    BAD_HEADER_VALUE = "E0111", "A header value with CR, LF or other control characters.", "Remove the control characters from the value.";
    OUT_OF_RANGE = "E0112", "A number outside its allowed range (e.g. `rate_limit` <= 0, `leeway_seconds` outside 0..=300).", "Use a value within the range given in the message.";
    UNKNOWN_AUTH = "E0113", "`authorization.type` is not basic, apikey, jwt or forward.", "Use `basic`, `apikey`, `jwt` or `forward`.";
    BASIC_NO_COLON = "E0114", "Basic credentials without `:` between user and password.", "Write `creds: \"user:password\"`.";
    MISSING_CREDS = "E0115", "`basic` or `apikey` authorization without credentials.", "Add `creds:` with the credentials.";
    BAD_REDIRECT = "E0116", "`redirect_to` is not an absolute http(s) URL.", "Write `redirect_to: \"https://example.com\"`.";
    EMPTY_HOST = "E0117", "A virtual host with no paths.", "Add at least one path under `paths`, e.g. `\"/\"`.";
    BAD_PROVIDER_SERVER = "E0118", "A Consul server that is not an http(s) URL.", "Write `http://127.0.0.1:8500`.";
    BAD_NAME = "E0119", "A service or namespace name with characters outside `a-z0-9-._`.", "Use the name exactly as Consul/Kubernetes shows it.";
    FORBIDDEN_HEADER = "E0120", "A header that a config must not set (framing or hop-by-hop: Content-Length, Transfer-Encoding, Connection, Host...).", "Remove the header; the proxy manages it.";
    DUPLICATE_ROUTE = "E0121", "A provider service maps to a host and path already defined.", "Give the service another `path` or remove the file route.";
    JWT_ONLY_KEY = "E0122", "`issuer`, `audience` or `leeway_seconds` in an `authorization` whose `type` is not `jwt` (only JWTs carry claims).", "Remove the key, or use `type: jwt`.";
    JWT_CLAIM_EMPTY = "E0123", "A jwt `issuer` or `audience` that is empty (an empty string, or an empty `audience` list): no token could match it.", "Write the expected `iss`/`aud` value, or remove the key to leave that claim unchecked.";
    ACME_NAME_UNSUPPORTED = "E0128", "`acme: true` on a wildcard host (`*.example.com`) or on `DEFAULT`: such certificates need the DNS-01 challenge, which this build does not implement.", "Mark exact host names only; serve wildcard certificates from `proxy_certificates` yourself.";
    FORWARD_AUTH_KEY = "E0124", "A key of an `authorization` block that does not apply to its `type`: `url`, `timeout_ms`, `request_headers`, `response_headers`, `trust_forward_header` or `cache_seconds` without `type: forward`, or `creds`/`creds_file` with it.", "Remove the key, or change `type`.";
    BAD_FORWARD_AUTH_URL = "E0125", "A forward authentication `url` that is missing or not `http://host[:port]/path` (https is not supported yet).", "Write `http://127.0.0.1:9091/verify`.";
    FORWARD_AUTH_CACHE_KEYLESS = "E0126", "Forward authentication with `cache_seconds` but no `request_headers`: one cached answer would let every client in.", "List the headers that carry the credentials (e.g. `request_headers: [Authorization, Cookie]`), or remove `cache_seconds`.";
    BAD_LIMITS_STORE = "E0127", "A `limits_store.url` that is not `redis://host[:port][/db]` or `rediss://...` or that carries a password, or a `key_prefix` that is not 1 to 64 visible ASCII characters.", "Write `redis://127.0.0.1:6379/0` and put the password in `password_file`; write a prefix such as `aralez:`.";
    BAD_LISTEN = "E0200", "A listener address that is not `IP:port` (names are never resolved).", "Write `0.0.0.0:6193`, `127.0.0.1:3000` or `[::]:6193`.";
    FILE_SERVER_PAIR = "E0201", "Only one of `file_server_folder` and `file_server_address` is set.", "Set both (to enable the file server) or neither.";
    BAD_ENUM = "E0202", "A value that is not one of the allowed words.", "Use one of the values listed in the message.";
    BAD_CIDR = "E0203", "A `trusted_proxies` entry that is not an IP or CIDR.", "Write `10.0.0.0/8`, `192.168.1.10` or `fd00::/8`.";
    TLS_WITHOUT_CERTS = "E0204", "`proxy_address_tls` without `proxy_certificates`.", "Set `proxy_certificates` to the folder of NAME.crt/NAME.key pairs.";
    ADMIN_TLS_INCOMPLETE = "E0205", "The admin TLS listener needs `config_tls_address`, `config_tls_certificate` and `config_tls_key_file` together.", "Set all three, or none.";
    MASTER_KEY_TWICE = "E0206", "Both `master_key` and `master_key_file` are set.", "Keep one of them (prefer `master_key_file`).";
    EMPTY_VALUE = "E0207", "An empty string where a name or path is required.", "Write a value or remove the key.";
    ACME_WITHOUT_TLS = "E0208", "`acme` without a TLS listener (`proxy_address_tls` and `proxy_certificates`): the certificates would be served by nobody.", "Add `proxy_address_tls` and `proxy_certificates` (the folder where issued certificates are written).";
    ACME_BAD_VALUE = "E0209", "An `acme` setting with a malformed value: `directory` not an `https` URL, `email` not an address.", "Write the directory URL of the CA (https) and a contact address `name@domain`.";
    REFERENCED_FILE_MISSING = "E0801", "A file that main.yaml names does not exist (reported by `aralez check --main` without `--syntax-only`, not by the pure compiler).", "Create the file or fix the path; relative paths are resolved against main.yaml's folder.";
    REFERENCED_FOLDER_MISSING = "E0802", "A folder that main.yaml names (or the folder of a file it will write) does not exist (reported by `aralez check --main`).", "Create the folder or fix the path; relative paths are resolved against main.yaml's folder.";
    AUTH_SECRET_UNAVAILABLE = "E0803", "A route's authentication secret cannot be loaded: its `creds_file` is unreadable, empty or malformed, or a `jwt` route without `creds` while no master key is configured (reported by the runtime when it loads a plan, not by the pure compiler).", "Fix the file (basic: one `user:password` line), or set `master_key`/`master_key_file` in main.yaml, or give the route its own `creds`.";
    TLS_PAIR_INVALID = "E0804", "A TLS certificate pair (`NAME.crt` + `NAME.key` in `proxy_certificates`, or the admin TLS certificate and key) does not load: unreadable, not PEM, unsupported key type, key not matching the certificate, expired, or one file of the pair missing (reported by `aralez check --main`; the running proxy skips the pair with the same message).", "Fix or remove the file named in the message; the other pairs keep serving.";
    UNSUPPORTED = "E0900", "A setting that this build of aralez does not support yet.", "Remove the setting.";
    DEPRECATED = "W0001", "An Aralez 0.92 spelling; still accepted.", "Use the canonical spelling given in the message.";
    TO_HTTPS_NO_TLS = "W0002", "`to_https` while no TLS listener (`proxy_address_tls`) is configured.", "Configure `proxy_address_tls`, or remove `to_https`.";
    SHORT_SECRET = "W0003", "A JWT secret, API key or Basic password shorter than 16 bytes.", "Use a long random secret (at least 32 random bytes).";
    INLINE_SECRET = "W0004", "A header whose value looks like a credential, written inline in the config.", "Keep credentials out of configs under version control, or remove the header.";
    SECTION_IGNORED = "W0005", "A provider section that the selected `provider` does not use.", "Remove the section, or select that provider.";
    AUTH_PLAIN_HTTP = "W0006", "A route with authentication that is served over plain HTTP although a TLS listener exists.", "Set `to_https: true` on the route (or globally).";
    ADMIN_PUBLIC = "W0010", "The admin API listens on a non-loopback address.", "Bind it to 127.0.0.1, or make sure a firewall protects it.";
    SHORT_MASTER_KEY = "W0011", "`master_key` is shorter than 32 bytes.", "Use at least 32 random bytes (e.g. `openssl rand -hex 32`).";
    TLS_GRADE_UNSAFE = "W0012", "`proxy_tls_grade: unsafe` is accepted as `medium` (rustls has no legacy suites).", "Use `medium` or `high`.";
    GENERATED_SKIPPED = "W0014", "A route a provider generated (a Consul service's `aralez.*` tags) does not compile or collides with another route; it is left out and the others serve.", "Fix the tags of that service (the message names it and the problem).";
    LISTEN_PORT_ZERO = "W0013", "A listener address with port 0: the system picks a random port that nobody can be told about.", "Write the port to listen on, e.g. `0.0.0.0:6193`.";
    TLS_CERT_EXPIRING = "W0801", "A TLS certificate (in `proxy_certificates`, or the admin's) expires within 14 days (reported by `aralez check --main`).", "Renew it; the certificate folder is reloaded without a restart.";
    TLS_FOLDER_EMPTY = "W0802", "`proxy_certificates` holds no usable certificate pair: TLS handshakes fail until one is added (reported by `aralez check --main`).", "Add `NAME.crt` + `NAME.key` pairs (PEM) to the folder.";
}

/// The registry entry of a code.
pub fn info(code: &str) -> Option<&'static CodeInfo> {
    ALL.iter().find(|c| c.code == code)
}
