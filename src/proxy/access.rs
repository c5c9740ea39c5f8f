//! The access line of a request: text through the process logger (as before), or handed to the
//! access log writer thread (JSON, or text to `access_log_file`).

use aralez_compiler::AccessLogFormat;
use pingora::prelude::Session;
use pingora::Error;

use super::{request_host, route_of, AccessLog, Proxy, RequestCtx};

impl Proxy {
    /// Writes the access line of a finished request, if `access_log` wants one.
    pub(super) fn access_line(
        &self,
        session: &Session,
        e: Option<&Error>,
        ctx: &RequestCtx,
        status: u16,
    ) {
        let log_it = match self.settings.access_log {
            AccessLog::Off => false,
            AccessLog::All => true,
            AccessLog::Errors => status >= 400 || status == 0,
        };
        if !log_it {
            return;
        }
        let req = session.req_header();
        let route = route_of(ctx).map(|r| r.id.as_str());
        let request_id = ctx.ids.as_ref().map_or("-", |i| i.request_id_str());
        let writer = match &self.access_writer {
            Some(w) if w.format() == AccessLogFormat::Json => w,
            Some(w) => {
                let line = format!(
                    "{} INFO access: {}\n",
                    crate::log::timestamp(),
                    text(session, e, ctx, status, request_id)
                );
                w.write(line);
                return;
            }
            None => {
                log::info!(target: "access", "{}", text(session, e, ctx, status, request_id));
                return;
            }
        };
        let loaded;
        let generation = match &ctx.routed {
            Some(r) => r.generation.hash(),
            None => {
                loaded = self.store.load();
                loaded.hash()
            }
        };
        let time = crate::log::timestamp();
        let error = e.map(|e| format!("{:?}", e.etype()));
        let (auth, auth_result) = ctx.auth.unwrap_or(("none", "none"));
        let entry = crate::access_log::Entry {
            time: &time,
            request_id,
            trace_id: ctx.ids.as_ref().map_or("-", |i| i.trace_id()),
            client: ctx.client.map(|c| c.real),
            peer: ctx.client.map(|c| c.peer),
            method: req.method.as_str(),
            host: request_host(req).unwrap_or("-"),
            path: req.uri.path(),
            status,
            bytes_in: session.body_bytes_read(),
            bytes_out: session.body_bytes_sent(),
            // whole microseconds, so the JSON shows `2.284`, not `2.2836800000000004`
            duration_ms: ctx.started.elapsed().as_micros() as f64 / 1000.0,
            upstream: ctx.peer_id.as_deref(),
            route,
            generation,
            auth,
            auth_result,
            limit: ctx.limit.unwrap_or("none"),
            error: error.as_deref(),
        };
        writer.write(entry.json_line());
    }
}

/// The text access line (without time and level).
fn text(
    session: &Session,
    e: Option<&Error>,
    ctx: &RequestCtx,
    status: u16,
    request_id: &str,
) -> String {
    let req = session.req_header();
    format!(
        "{} {} {} {} {} {}ms upstream={} route={} id={}{}",
        ctx.client
            .map_or_else(|| "-".to_string(), |c| c.peer.to_string()),
        req.method,
        request_host(req).unwrap_or("-"),
        req.uri.path(),
        status,
        ctx.started.elapsed().as_millis(),
        ctx.peer_id.as_deref().unwrap_or("-"),
        route_of(ctx).map_or("-", |r| r.id.as_str()),
        request_id,
        e.map(|e| format!(" error={:?}", e.etype()))
            .unwrap_or_default(),
    )
}
