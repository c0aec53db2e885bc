//! Mutual TLS between the processes of a cluster: clients, the scheduler and executors each hold
//! a certificate signed by the cluster's CA, present it, and accept only peers whose certificate
//! that CA signed.
//!
//! ```text
//!  client ──mTLS──► scheduler (gRPC, Flight SQL, /readyz on one port)
//!    │                  ▲
//!    │ results          │ mTLS (register, heartbeat, poll for tasks)
//!    ▼                  │
//!  executor ◄──mTLS──► executor (shuffle fetches through each executor's Flight service)
//! ```
//!
//! Ballista 55 has the hooks (`use_tls`, an endpoint override for every gRPC client, a
//! replaceable executor Flight server) but builds some addresses as `http://…`, over which tonic
//! never speaks TLS: the endpoint override turns those into `https://…` before adding this
//! process's certificate and the CA. The scheduler's server is assembled here (Ballista's own
//! serves plain TCP only), with the same services.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ballista_core::extension::EndpointOverrideFn;
use datafusion::common::{DataFusionError, Result};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig};

/// This process's certificate and key, and the CA every process of the cluster trusts (PEM).
#[derive(Clone)]
pub struct ClusterTls {
    cert: Vec<u8>,
    key: Vec<u8>,
    ca: Vec<u8>,
}

impl std::fmt::Debug for ClusterTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClusterTls {{ cert: {} bytes, key: <hidden>, ca: {} bytes }}", self.cert.len(), self.ca.len())
    }
}

fn tls_error(what: &str, e: impl std::fmt::Display) -> DataFusionError {
    DataFusionError::Configuration(format!("TLS: {what}: {e}"))
}

impl ClusterTls {
    /// Reads the three PEM files and checks that each holds what it should.
    pub fn from_files(cert: &str, key: &str, ca: &str) -> Result<Self> {
        let read = |path: &str, what: &str| std::fs::read(path).map_err(|e| tls_error(&format!("cannot read the {what} {path}"), e));
        let tls = ClusterTls { cert: read(cert, "certificate")?, key: read(key, "private key")?, ca: read(ca, "CA certificate")? };
        let has = |pem: &[u8], label: &str| String::from_utf8_lossy(pem).contains(&format!("-----BEGIN {label}"));
        if !has(&tls.cert, "CERTIFICATE") {
            return Err(tls_error(cert, "not a PEM certificate"));
        }
        if !has(&tls.ca, "CERTIFICATE") {
            return Err(tls_error(ca, "not a PEM certificate"));
        }
        if !String::from_utf8_lossy(&tls.key).contains("PRIVATE KEY-----") {
            return Err(tls_error(key, "not a PEM private key"));
        }
        Ok(tls)
    }

    pub(crate) fn server(&self) -> ServerTlsConfig {
        ServerTlsConfig::new().identity(Identity::from_pem(&self.cert, &self.key)).client_ca_root(Certificate::from_pem(&self.ca))
    }

    pub(crate) fn client(&self) -> ClientTlsConfig {
        ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&self.ca)).identity(Identity::from_pem(&self.cert, &self.key))
    }

    /// The override every gRPC client of this process goes through: `https`, this process's
    /// certificate, the cluster's CA.
    pub(crate) fn endpoint_override(&self) -> EndpointOverrideFn {
        let client = self.client();
        Arc::new(move |endpoint: Endpoint| {
            let uri = endpoint.uri().to_string();
            let endpoint = match uri.strip_prefix("http://") {
                // Built as plain http by Ballista: the same address over TLS, with the
                // connection settings Ballista gives its endpoints.
                Some(rest) => Endpoint::from_shared(format!("https://{rest}"))?
                    .connect_timeout(Duration::from_secs(20))
                    .tcp_nodelay(true)
                    .tcp_keepalive(Some(Duration::from_secs(3600)))
                    .http2_keep_alive_interval(Duration::from_secs(300))
                    .keep_alive_timeout(Duration::from_secs(20))
                    .keep_alive_while_idle(true),
                None => endpoint,
            };
            Ok(endpoint.tls_config(client.clone())?)
        })
    }

    /// A rustls client configuration for plain HTTP over TLS (the `/readyz` check).
    fn rustls_client(&self) -> Result<rustls::ClientConfig> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&self.ca) {
            roots.add(cert.map_err(|e| tls_error("the CA certificate", e))?).map_err(|e| tls_error("the CA certificate", e))?;
        }
        let chain = CertificateDer::pem_slice_iter(&self.cert).collect::<std::result::Result<Vec<_>, _>>().map_err(|e| tls_error("the certificate", e))?;
        let key = PrivateKeyDer::from_pem_slice(&self.key).map_err(|e| tls_error("the private key", e))?;
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_error("protocol versions", e))?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(|e| tls_error("the certificate and key", e))
    }

    /// `GET path` over TLS to `addr`: the response as text.
    pub(crate) async fn get(&self, addr: SocketAddr, path: &str) -> Result<String> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let io = |e: std::io::Error| DataFusionError::External(Box::new(e));
        let connector = tokio_rustls::TlsConnector::from(Arc::new(self.rustls_client()?));
        let tcp = tokio::net::TcpStream::connect(addr).await.map_err(io)?;
        let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
        let mut stream = connector.connect(name, tcp).await.map_err(io)?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.map_err(io)?;
        let mut response = Vec::new();
        // A server may end a TLS stream without close_notify after answering.
        match stream.read_to_end(&mut response).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !response.is_empty() => {}
            Err(e) => return Err(io(e)),
        }
        Ok(String::from_utf8_lossy(&response).into_owned())
    }
}

/// Serves the scheduler over mutual TLS on `listener`: Ballista's scheduler gRPC service, the
/// Flight service (Flight SQL when enabled, else the result proxy) and `/healthz` / `/readyz`,
/// as Ballista's own server does over plain TCP.
pub(crate) async fn serve_scheduler(
    listener: tokio::net::TcpListener,
    scheduler: ballista_scheduler::scheduler_server::SchedulerServer<datafusion_proto::protobuf::LogicalPlanNode, datafusion_proto::protobuf::PhysicalPlanNode>,
    tls: &ClusterTls,
    authenticator: Option<Arc<dyn ballista_flight_sql::Authenticator>>,
) -> Result<()> {
    use arrow_flight::flight_service_server::FlightServiceServer;
    use axum::extract::State;
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    use ballista_core::extension::BallistaConfigGrpcEndpoint;
    use ballista_core::flight_proxy_service::BallistaFlightProxyService;
    use ballista_core::serde::protobuf::scheduler_grpc_server::SchedulerGrpcServer;
    use tonic::service::RoutesBuilder;

    let config = scheduler.state.config.clone();
    let max_decoding = config.grpc_server_max_decoding_message_size as usize;
    let max_encoding = config.grpc_server_max_encoding_message_size as usize;
    let mut routes = RoutesBuilder::default();
    routes.add_service(
        SchedulerGrpcServer::new(scheduler.clone()).max_encoding_message_size(max_encoding).max_decoding_message_size(max_decoding),
    );
    let customize = config.override_create_grpc_client_endpoint.clone().map(|f| Arc::new(BallistaConfigGrpcEndpoint::new(f)));
    let proxy = BallistaFlightProxyService::new(max_decoding, max_encoding, true, customize);
    let scheduler = Arc::new(scheduler);
    if config.flight_sql {
        let mut flight_sql = ballista_flight_sql::BallistaFlightSqlService::new(scheduler.clone(), proxy);
        if let Some(a) = authenticator {
            flight_sql = flight_sql.with_authenticator(a);
        }
        routes.add_service(FlightServiceServer::new(flight_sql).max_decoding_message_size(max_decoding).max_encoding_message_size(max_encoding));
    } else {
        routes.add_service(FlightServiceServer::new(proxy).max_decoding_message_size(max_decoding).max_encoding_message_size(max_encoding));
    }
    type Scheduler = ballista_scheduler::scheduler_server::SchedulerServer<
        datafusion_proto::protobuf::LogicalPlanNode,
        datafusion_proto::protobuf::PhysicalPlanNode,
    >;
    async fn readyz(State(s): State<Arc<Scheduler>>) -> axum::response::Response {
        // Executors heard from within the scheduler's executor timeout (Ballista's own count
        // is not public; `is_ready` below is).
        let timeout = s.state.config.executor_timeout_seconds;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let alive = match s.state.executor_manager.get_executors_state().await {
            Ok(state) => state.iter().filter(|(_, seen, _)| seen.is_some_and(|t| t.as_secs() + timeout >= now)).count(),
            Err(_) => 0,
        };
        if s.is_ready() {
            (StatusCode::OK, format!("ready: {alive} executors registered\n")).into_response()
        } else {
            let required = s.state.config.min_ready_executors;
            (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {alive}/{required} executors registered\n")).into_response()
        }
    }
    let health = axum::Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .route("/readyz", axum::routing::get(readyz))
        .with_state(scheduler);
    let router = routes.routes().into_axum_router().merge(health);
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    tonic::transport::Server::builder()
        .tls_config(tls.server())
        .map_err(|e| tls_error("the scheduler's certificate", e))?
        .accept_http1(true)
        .tcp_nodelay(true)
        .add_routes(tonic::service::Routes::from(router))
        .serve_with_incoming(incoming)
        .await
        .map_err(|e| DataFusionError::External(Box::new(e)))
}

/// The executor's Flight service (its shuffle output) over mutual TLS.
pub(crate) fn executor_flight_server(tls: ClusterTls) -> Arc<ballista_executor::ArrowFlightServerProvider> {
    Arc::new(move |work_dir: String, addr: SocketAddr, mut shutdown: ballista_executor::shutdown::Shutdown, grpc: ballista_core::utils::GrpcServerConfig| {
        let tls = tls.clone();
        tokio::spawn(async move {
            use arrow_flight::flight_service_server::FlightServiceServer;
            let service = FlightServiceServer::new(ballista_executor::flight_service::BallistaFlightService::new(work_dir))
                .max_decoding_message_size(16 * 1024 * 1024)
                .max_encoding_message_size(16 * 1024 * 1024);
            ballista_core::utils::create_grpc_server(&grpc)
                .tls_config(tls.server())
                .map_err(ballista_core::error::BallistaError::TonicError)?
                .add_service(service)
                .serve_with_shutdown(addr, async move { shutdown.recv().await })
                .await
                .map_err(ballista_core::error::BallistaError::TonicError)
        })
    })
}
