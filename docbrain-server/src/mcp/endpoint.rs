//! `/mcp`: the MCP tools ([`DocsTools`]) over Streamable HTTP, behind the
//! same keys and the same `as` rule as `/search`.
//!
//! Stateless: every POST carries one JSON-RPC message and gets its answer as JSON, so any
//! replica can answer any request and nothing is held between them.

use std::sync::Arc;
use std::time::Duration;

use docbrain_core::{Caller, Pipeline};
use http_body_util::Full;
use hyper::body::Body;
use hyper::Request;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use tower_service::Service;

use super::DocsTools;
use crate::routes::{read_body, Response};
use crate::AppState;

/// The largest MCP request read.
const MAX_BODY_BYTES: usize = 1024 * 1024;
/// How long an MCP request body may take to arrive.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// The MCP service of one server.
#[derive(Clone)]
pub struct McpEndpoint {
    service: Arc<StreamableHttpService<DocsTools, NeverSessionManager>>,
}

impl std::fmt::Debug for McpEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpEndpoint").finish_non_exhaustive()
    }
}

impl McpEndpoint {
    /// The tools over `pipeline`. With `any_host`, requests naming any `Host` are served (the
    /// keys guard a server on the network); otherwise only loopback names are, which keeps a
    /// keyless local server out of reach of DNS-rebinding web pages.
    pub fn new(pipeline: &Pipeline, any_host: bool) -> Self {
        // Built once: each stateless request gets a clone.
        let tools = DocsTools::new(pipeline.clone(), Caller::Anonymous);
        let mut config = StreamableHttpServerConfig::default();
        config.legacy_session_mode = false;
        config.json_response = true;
        config.max_request_body_bytes = MAX_BODY_BYTES;
        if any_host {
            config = config.disable_allowed_hosts();
        }
        Self {
            service: Arc::new(StreamableHttpService::new(
                // Requests name their caller; one with none is anonymous.
                move || Ok(tools.clone()),
                Arc::new(NeverSessionManager::default()),
                config,
            )),
        }
    }
}

/// Answers one `/mcp` request (already admitted by its key) as `caller`.
pub(crate) async fn handle<B>(state: &AppState, req: Request<B>, caller: Caller) -> Response
where
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (mut parts, body) = req.into_parts();
    let body = match read_body(body, MAX_BODY_BYTES, BODY_TIMEOUT).await {
        Ok(body) => body,
        Err(answer) => return answer,
    };
    parts.extensions.insert(caller);
    let request = Request::from_parts(parts, Full::new(body));
    match StreamableHttpService::clone(&state.mcp.service)
        .call(request)
        .await
    {
        Ok(response) => response,
        Err(never) => match never {},
    }
}
