//! Request metrics: counters and histograms per route, labelled from plan ids only.

use pingora::prelude::Session;
use pingora::Error;

use super::{route_of, Proxy, RequestCtx};

impl Proxy {
    pub(super) fn count_retry(&self, ctx: &RequestCtx) {
        if let Some(route) = route_of(ctx) {
            self.metrics
                .retries
                .with_label_values(&[route.id.as_str()])
                .inc();
        }
    }

    pub(super) fn record_metrics(
        &self,
        session: &Session,
        e: Option<&Error>,
        ctx: &mut RequestCtx,
        status: u16,
    ) {
        if ctx.counted_in_flight {
            self.metrics.in_flight.dec();
            ctx.counted_in_flight = false;
        }
        let route = route_of(ctx).map_or("none", |r| r.id.as_str());
        let code_buf = itoa_status(status);
        let code = code_buf.as_str();
        self.metrics
            .requests
            .with_label_values(&[
                route,
                crate::metrics::method_label(&session.req_header().method),
                code,
            ])
            .inc();
        self.metrics
            .duration
            .with_label_values(&[route])
            .observe(ctx.started.elapsed().as_secs_f64());
        if let Some(backend) = ctx.peer_id.as_deref() {
            let outcome = if e.is_some() { "error" } else { "ok" };
            self.metrics
                .upstream_requests
                .with_label_values(&[route, backend, outcome])
                .inc();
        }
    }
}

/// Status code as text without a heap allocation for the common codes.
fn itoa_status(status: u16) -> StatusText {
    let mut buf = [b'0'; 3];
    let s = status.min(999);
    buf[0] = b'0' + (s / 100) as u8;
    buf[1] = b'0' + (s / 10 % 10) as u8;
    buf[2] = b'0' + (s % 10) as u8;
    StatusText(buf)
}

/// Three ASCII digits.
struct StatusText([u8; 3]);

impl StatusText {
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("000")
    }
}
