//! What a request is answered with: the [`Decision`] for a file, a redirect or an error, and its
//! response header.

use super::*;

impl Decision {
    /// The response status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The response headers, in sending order.
    pub fn headers(&self) -> &[(HeaderName, HeaderValue)] {
        &self.headers
    }

    /// The first value of header `name` (case-insensitive), if present and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.as_str().eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.to_str().ok())
    }

    /// The canonical path of the file this response comes from (also for `HEAD`, `304`, `416`).
    pub fn served_path(&self) -> Option<&Path> {
        self.served.as_deref()
    }

    /// The `(offset, length)` of the file bytes this response will send, if it sends a file.
    pub fn file_range(&self) -> Option<(u64, u64)> {
        match self.body {
            Body::File { offset, len, .. } => Some((offset, len)),
            _ => None,
        }
    }

    /// Reads the whole planned body into memory (blocking; meant for tests and tooling).
    pub fn read_body(self) -> io::Result<Vec<u8>> {
        match self.body {
            Body::Empty => Ok(Vec::new()),
            Body::Bytes(b) => Ok(b.to_vec()),
            Body::File {
                mut file,
                offset,
                len,
            } => {
                file.seek(SeekFrom::Start(offset))?;
                let mut out = Vec::new();
                file.take(len).read_to_end(&mut out)?;
                Ok(out)
            }
        }
    }

    /// A small text error (or other generated) response; `head` drops the body.
    pub(super) fn error(status: StatusCode, head: bool) -> Self {
        let text = format!(
            "{} {}\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or("Error")
        );
        let mut d = Decision {
            status,
            headers: Vec::with_capacity(4),
            body: Body::Empty,
            served: None,
        };
        d.push(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        d.push(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        d.push(header::CONTENT_LENGTH, HeaderValue::from(text.len()));
        if !head {
            d.body = Body::Bytes(Bytes::from(text));
        }
        d
    }

    pub(super) fn push(&mut self, name: HeaderName, value: HeaderValue) {
        self.headers.push((name, value));
    }

    /// Builds the pingora response header.
    pub(super) fn response_header(&self) -> pingora::Result<ResponseHeader> {
        let mut resp = ResponseHeader::build_no_case(self.status, Some(self.headers.len()))?;
        for (name, value) in &self.headers {
            resp.append_header(name.clone(), value.clone())?;
        }
        Ok(resp)
    }
}

/// The decision for a resolved regular file.
pub(super) fn file_decision(target: Target, method: &Method, headers: &HeaderMap) -> Decision {
    let Target {
        file,
        meta,
        canonical,
        type_name,
    } = target;
    let head = method == Method::HEAD;
    let size = meta.len();
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok());
    let etag = mtime.map(|m| weak_etag(size, m));
    let last_modified = mtime.map(|m| format_http_date(m.as_secs()));

    let mut d = Decision {
        status: StatusCode::OK,
        headers: Vec::with_capacity(8),
        body: Body::Empty,
        served: Some(canonical),
    };
    let validators = |d: &mut Decision| {
        if let Some(v) = etag.as_deref().and_then(|e| HeaderValue::from_str(e).ok()) {
            d.push(header::ETAG, v);
        }
        if let Some(v) = last_modified
            .as_deref()
            .and_then(|l| HeaderValue::from_str(l).ok())
        {
            d.push(header::LAST_MODIFIED, v);
        }
    };

    if not_modified(headers, etag.as_deref(), mtime) {
        d.status = StatusCode::NOT_MODIFIED;
        validators(&mut d);
        d.push(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        return d;
    }

    let range = match headers.get(header::RANGE) {
        Some(value) if method == Method::GET => {
            let if_range_ok = match headers.get(header::IF_RANGE) {
                None => true,
                Some(v) => if_range_matches(v.as_bytes(), last_modified.as_deref()),
            };
            if if_range_ok {
                parse_range(value.as_bytes(), size)
            } else {
                RangeOutcome::Full
            }
        }
        _ => RangeOutcome::Full,
    };

    if range == RangeOutcome::Unsatisfiable {
        let mut e = Decision::error(StatusCode::RANGE_NOT_SATISFIABLE, head);
        if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
            e.push(header::CONTENT_RANGE, v);
        }
        e.push(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        e.served = d.served;
        return e;
    }

    d.push(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(&type_name)),
    );
    d.push(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    d.push(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    validators(&mut d);
    let (offset, len) = match range {
        RangeOutcome::Partial { start, end } => {
            d.status = StatusCode::PARTIAL_CONTENT;
            if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{size}")) {
                d.push(header::CONTENT_RANGE, v);
            }
            (start, end.saturating_sub(start).saturating_add(1))
        }
        _ => (0, size),
    };
    d.push(header::CONTENT_LENGTH, HeaderValue::from(len));
    if !head {
        d.body = Body::File { file, offset, len };
    }
    d
}

/// `301` from a directory URL to its slash form.
pub(super) fn redirect_to_slash(segments: &[String], query: Option<&str>, head: bool) -> Decision {
    let mut location = String::from("/");
    for segment in segments {
        encode_segment(segment, &mut location);
        location.push('/');
    }
    if let Some(q) = query.filter(|q| q.bytes().all(|b| (0x21..=0x7e).contains(&b))) {
        location.push('?');
        location.push_str(q);
    }
    match HeaderValue::from_str(&location) {
        Ok(v) => {
            let mut d = Decision::error(StatusCode::MOVED_PERMANENTLY, head);
            d.push(header::LOCATION, v);
            d
        }
        Err(_) => Decision::error(StatusCode::INTERNAL_SERVER_ERROR, head),
    }
}

/// `Content-Type` for a file name, by extension (case-insensitive).
pub(super) fn content_type(name: &str) -> &'static str {
    let ext = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => ext.to_ascii_lowercase(),
        _ => return "application/octet-stream",
    };
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" | "cjs" => "text/javascript; charset=utf-8",
        "txt" => "text/plain; charset=utf-8",
        "csv" => "text/csv; charset=utf-8",
        "md" => "text/markdown; charset=utf-8",
        "json" | "map" => "application/json",
        "webmanifest" => "application/manifest+json",
        "xml" => "application/xml",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "ico" => "image/x-icon",
        "wasm" => "application/wasm",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        "otf" => "font/otf",
        "pdf" => "application/pdf",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "mp3" => "audio/mpeg",
        "ogg" => "audio/ogg",
        _ => "application/octet-stream",
    }
}
