//! The endpoints: the telemetry path, `/healthz`, `/readyz`, and a landing page.

use super::conn::{Conn, ReplyBody};
use super::flight::{BodyKey, ScrapeError};
use super::negotiate::{accepts_gzip, negotiate};
use super::{App, Surface};
use crate::selfmetrics::Refusal;
use crate::web::WebConfig;
use crate::web::auth::Check;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

type Reply = Response<Full<Bytes>>;

/// Margin kept from Prometheus' scrape timeout for sending the response.
const TIMEOUT_MARGIN: Duration = Duration::from_millis(250);

/// Answers one request of connection `conn`.
///
/// With a web configuration, every path is behind its rate limit and basic auth (as in
/// exporter-toolkit, which wraps the whole server), and its headers go on every answer.
/// The probe listener serves `/healthz` and `/readyz` alone, to anyone.
pub(crate) async fn handle(
    app: Arc<App>,
    conn: Arc<Conn>,
    web: Option<Arc<WebConfig>>,
    surface: Surface,
    req: Request<Incoming>,
) -> Result<Response<ReplyBody>, Infallible> {
    let mut reply = match admit(&app, &conn, web.as_deref(), &req).await {
        Some(refused) => refused,
        None => route(&app, &conn, surface, &req).await,
    };
    if let Some(web) = &web {
        for (name, value) in &web.headers {
            if let (Ok(n), Ok(v)) = (
                header::HeaderName::try_from(name.as_str()),
                HeaderValue::try_from(value.as_str()),
            ) {
                reply.headers_mut().insert(n, v);
            }
        }
    }
    Ok(reply.map(|body| conn.body(body)))
}

/// The answer to a request the web configuration refuses (rate limit, credentials), or
/// `None` to serve it. bcrypt runs on a thread of its own at the lowest priority, never
/// on an async thread.
async fn admit(
    app: &App,
    conn: &Conn,
    web: Option<&WebConfig>,
    req: &Request<Incoming>,
) -> Option<Reply> {
    let web = web?;
    if web.rate_limit.as_ref().is_some_and(|limit| !limit.allow()) {
        app.metrics.refused(Refusal::RateLimited);
        return Some(too_many("too many requests\n"));
    }
    let auth = web.auth.as_ref()?;
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes);
    let allowed = match auth.check_from(Some(conn.peer().ip()), given) {
        Check::Allowed => true,
        Check::Denied => false,
        Check::Verify(v) => match &app.bcrypt {
            Some(thread) => thread.run(move || v.run()).await.unwrap_or(false),
            None => false,
        },
        Check::Busy => {
            app.metrics.refused(Refusal::AuthBusy);
            return Some(too_many("too many password checks at once, try again\n"));
        }
    };
    if allowed {
        return None;
    }
    app.metrics.refused(Refusal::Unauthorized);
    let mut r = text(StatusCode::UNAUTHORIZED, "unauthorized\n");
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"multiproc-exporter\", charset=\"UTF-8\""),
    );
    Some(r)
}

/// `429 Too Many Requests`, to be tried again in a second.
fn too_many(body: &str) -> Reply {
    let mut r = text(StatusCode::TOO_MANY_REQUESTS, body);
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

async fn route(
    app: &Arc<App>,
    conn: &Arc<Conn>,
    surface: Surface,
    req: &Request<Incoming>,
) -> Reply {
    let path = req.uri().path();
    let is_read = req.method() == Method::GET || req.method() == Method::HEAD;
    let head = req.method() == Method::HEAD;
    let known = match surface {
        Surface::Main => {
            path == app.config.telemetry_path || matches!(path, "/healthz" | "/readyz" | "/")
        }
        Surface::Probes => matches!(path, "/healthz" | "/readyz"),
    };
    let mut reply = if !known {
        text(StatusCode::NOT_FOUND, "not found\n")
    } else if !is_read {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        r
    } else if path == app.config.telemetry_path {
        metrics(app, conn, req).await
    } else if path == "/healthz" {
        text(StatusCode::OK, "ok\n")
    } else if path == "/readyz" {
        readyz(app)
    } else {
        landing(app)
    };
    if head {
        let len = reply.headers().get(header::CONTENT_LENGTH).cloned();
        *reply.body_mut() = Full::new(Bytes::new());
        if let Some(len) = len {
            reply.headers_mut().insert(header::CONTENT_LENGTH, len);
        }
    }
    reply
}

fn text(status: StatusCode, body: &str) -> Reply {
    let mut r = Response::new(Full::new(Bytes::from(body.to_owned())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    r
}

fn readyz(app: &App) -> Reply {
    if app.flight.is_ready() {
        return text(StatusCode::OK, "ready\n");
    }
    let why = app
        .flight
        .unready_reason()
        .unwrap_or_else(|| format!("directory {} not read yet", app.config.dir.display()));
    text(
        StatusCode::SERVICE_UNAVAILABLE,
        &format!("not ready: {why}\n"),
    )
}

/// The scrape's time budget from `X-Prometheus-Scrape-Timeout-Seconds`, less a margin
/// to send the answer; absent, unparsable or absurd values mean no budget.
fn scrape_budget(header: Option<&str>) -> Option<Duration> {
    let secs = header?.trim().parse::<f64>().ok()?;
    let budget = Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| !d.is_zero())?;
    Some(budget.saturating_sub(TIMEOUT_MARGIN).max(TIMEOUT_MARGIN))
}

async fn metrics(app: &App, conn: &Conn, req: &Request<Incoming>) -> Reply {
    let arrived = Instant::now();
    app.metrics.request();
    // The scrape cap; health checks and the landing page never wait for it.
    let Ok(turn) = app.scrapes.clone().acquire_owned().await else {
        return text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n");
    };
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let key = BodyKey {
        format: negotiate(header("accept")),
        gzip: accepts_gzip(header("accept-encoding")),
        names: name_filter(req.uri().query()),
    };
    let budget = scrape_budget(header("x-prometheus-scrape-timeout-seconds"));
    let fresh = app.flight.get(arrived);
    let scrape = match budget {
        None => fresh.await,
        Some(budget) => match tokio::time::timeout(budget, fresh).await {
            Ok(result) => result,
            Err(_) => {
                app.metrics.timed_out();
                match app.flight.last_done() {
                    // Better an older complete answer than none within the deadline.
                    Some(s) => Ok(s),
                    None => {
                        return text(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "the scrape timeout ran out before the directory was read\n",
                        );
                    }
                }
            }
        },
    };
    let body = match scrape {
        Ok(s) => s.body(key.clone()).await,
        Err(err) => Err(err),
    };
    let body = match body {
        Ok(body) => body,
        Err(err) => return failed(app, &err),
    };
    app.metrics.served(body.len());
    // The turn lasts until the body is written (or `--web.write-timeout` passes), so the
    // bodies held for clients are bounded by the cap.
    conn.hold(turn);
    let mut r = Response::new(Full::new(body.clone()));
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&key.format.content_type()) {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert(
        header::VARY,
        HeaderValue::from_static("Accept, Accept-Encoding"),
    );
    if key.gzip {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    r
}

/// A scrape that could not be produced: 500 with the reason; counted (a failed pass is
/// counted where it happened, a failed render here).
fn failed(app: &App, err: &ScrapeError) -> Reply {
    if matches!(err, ScrapeError::Render(_)) {
        app.metrics.scrape_failed(err.stage());
        tracing::error!(error = %err, "a scrape could not be rendered");
    }
    text(StatusCode::INTERNAL_SERVER_ERROR, &format!("{err}\n"))
}

/// The `name[]=` values of the query string, as prometheus_client's handlers accept them
/// (exact sample names); `None` when there is no filter.
fn name_filter(query: Option<&str>) -> Option<Vec<String>> {
    let names: Vec<String> = query?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(k, _)| percent_decode(k) == "name[]")
        .map(|(_, v)| percent_decode(v))
        .collect();
    (!names.is_empty()).then_some(names)
}

/// Decodes `%XX` escapes and `+` as a space; invalid escapes are kept as written.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn landing(app: &App) -> Reply {
    let path = html_escape(&app.config.telemetry_path);
    let dir = html_escape(&app.config.dir.display().to_string());
    let ready = if app.flight.is_ready() {
        "ready"
    } else {
        "not ready"
    };
    let body = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>multiproc-exporter</title></head>\n\
         <body><h1>multiproc-exporter</h1>\n<p>Serving the prometheus_client multiprocess directory \
         <code>{dir}</code> ({ready}).</p>\n<ul><li><a href=\"{path}\">{path}</a>: merged metrics</li>\n\
         <li><a href=\"/healthz\">/healthz</a>: the process answers</li>\n\
         <li><a href=\"/readyz\">/readyz</a>: the directory has been read</li></ul>\n\
         <p>Version {}.</p></body></html>\n",
        env!("CARGO_PKG_VERSION")
    );
    let mut r = text(StatusCode::OK, &body);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_issue_8_absurd_scrape_timeouts_mean_no_budget() {
        assert_eq!(scrape_budget(None), None);
        assert_eq!(scrape_budget(Some("1e20")), None);
        assert_eq!(scrape_budget(Some("-1")), None);
        assert_eq!(scrape_budget(Some("NaN")), None);
        assert_eq!(scrape_budget(Some("0")), None);
        assert_eq!(
            scrape_budget(Some("10")),
            Some(Duration::from_millis(9_750))
        );
        assert_eq!(scrape_budget(Some("0.1")), Some(TIMEOUT_MARGIN));
    }

    #[test]
    fn name_filter_reads_prometheus_client_queries() {
        assert_eq!(name_filter(None), None);
        assert_eq!(name_filter(Some("x=1")), None);
        assert_eq!(
            name_filter(Some("name[]=c_total&name%5B%5D=h_bucket&other=1")),
            Some(vec!["c_total".to_owned(), "h_bucket".to_owned()])
        );
        assert_eq!(percent_decode("a%2Fb+c%zz%4"), "a/b c%zz%4");
    }
}
