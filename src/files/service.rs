//! The pingora service around [`FileServer::plan`]: sending headers and streaming file bodies.

use super::*;

/// Sends a decision on the session. `Err(())` means the connection must not be reused.
pub(super) async fn send(session: &mut ServerSession, decision: Decision) -> Result<(), ()> {
    let header = decision.response_header().map_err(|e| {
        warn!("file server: cannot build response header: {e}");
    })?;
    session
        .write_response_header(Box::new(header))
        .await
        .map_err(|e| debug!("file server: writing header failed: {e}"))?;
    match decision.body {
        Body::Empty => session.finish_body().await.map_err(|e| {
            debug!("file server: finishing response failed: {e}");
        }),
        Body::Bytes(bytes) => session
            .write_response_body(bytes, true)
            .await
            .map_err(|e| debug!("file server: writing body failed: {e}")),
        Body::File { file, offset, len } => stream_file(session, file, offset, len).await,
    }
}

/// Streams `len` bytes of `file` from `offset` in chunks of at most [`CHUNK_SIZE`].
pub(super) async fn stream_file(
    session: &mut ServerSession,
    file: File,
    offset: u64,
    len: u64,
) -> Result<(), ()> {
    if len == 0 {
        return session
            .finish_body()
            .await
            .map_err(|e| debug!("file server: finishing response failed: {e}"));
    }
    let mut file = tokio::fs::File::from_std(file);
    if offset > 0 {
        file.seek(SeekFrom::Start(offset))
            .await
            .map_err(|e| debug!("file server: seek failed: {e}"))?;
    }
    let mut reader = file.take(len);
    let mut remaining = len;
    while remaining > 0 {
        let want = usize::try_from(remaining).map_or(CHUNK_SIZE, |r| r.min(CHUNK_SIZE));
        let mut buf = BytesMut::with_capacity(want);
        let n = reader
            .read_buf(&mut buf)
            .await
            .map_err(|e| debug!("file server: read failed: {e}"))?;
        if n == 0 {
            debug!("file server: file shrank while being sent; closing the connection");
            return Err(());
        }
        remaining = remaining.saturating_sub(n as u64);
        session
            .write_response_body(buf.freeze(), remaining == 0)
            .await
            .map_err(|e| debug!("file server: client went away: {e}"))?;
    }
    Ok(())
}

#[async_trait]
impl HttpServerApp for FileServer {
    async fn process_new_http(
        self: &Arc<Self>,
        mut session: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        match session.read_request().await {
            Ok(true) => {}
            Ok(false) => return None,
            Err(e) => {
                debug!("file server: cannot read request: {e}");
                return None;
            }
        }
        if *shutdown.borrow() || !session.is_body_empty() {
            session.set_keepalive(None);
        }
        session.set_write_timeout(Some(WRITE_TIMEOUT));

        let req = session.req_header();
        let method = req.method.clone();
        let path = req.uri.path().to_owned();
        let query = req.uri.query().map(str::to_owned);
        let mut headers = HeaderMap::new();
        for name in RELEVANT_HEADERS {
            for value in req.headers.get_all(&name) {
                headers.append(name.clone(), value.clone());
            }
        }
        let server = Arc::clone(self);
        let head = method == Method::HEAD;
        let decision = match tokio::task::spawn_blocking(move || {
            server.plan(&method, &path, query.as_deref(), &headers)
        })
        .await
        {
            Ok(d) => d,
            Err(e) => {
                warn!("file server: request task failed: {e}");
                Decision::error(StatusCode::INTERNAL_SERVER_ERROR, head)
            }
        };
        debug!(
            "file server: {} {} -> {}",
            session.req_header().method,
            session.req_header().uri,
            decision.status.as_u16()
        );
        send(&mut session, decision).await.ok()?;

        let settings = HttpPersistentSettings::for_session(&session);
        match session.finish().await {
            Ok(stream) => stream.map(|s| ReusedHttpStream::from_reusable_stream(s, settings)),
            Err(e) => {
                debug!("file server: finishing the request failed: {e}");
                None
            }
        }
    }
}

/// Builds the pingora service (named [`SERVICE_NAME`]) serving `root` on a TCP listener at `addr`.
///
/// Fails if `root` is not an existing directory (see [`FileServer::new`]). Binding happens when
/// the pingora server starts the service.
pub fn file_service(root: &Path, addr: SocketAddr) -> io::Result<Service<FileServer>> {
    let server = FileServer::new(root)?;
    let mut service = Service::new(SERVICE_NAME.to_owned(), server);
    service.add_tcp(&addr.to_string());
    Ok(service)
}
