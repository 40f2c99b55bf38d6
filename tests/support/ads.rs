//! A minimal ADS client (tonic + envoy-types), as Envoy would speak it.

use std::time::Duration;

use devbridge::app::Daemon;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

/// A request as Envoy sends it from proxy `node_cluster` in zone
/// `dev-local`, ACKing `ack_of` when given.
pub fn envoy_request(
    node_cluster: &str,
    type_url: &str,
    names: Vec<String>,
    ack_of: Option<&DiscoveryResponse>,
) -> DiscoveryRequest {
    use envoy_types::pb::envoy::config::core::v3::{Locality, Node};
    DiscoveryRequest {
        type_url: type_url.into(),
        resource_names: names,
        version_info: ack_of.map(|r| r.version_info.clone()).unwrap_or_default(),
        response_nonce: ack_of.map(|r| r.nonce.clone()).unwrap_or_default(),
        node: Some(Node {
            id: "bench".into(),
            cluster: node_cluster.into(),
            locality: Some(Locality { zone: "dev-local".into(), ..Default::default() }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub struct AdsClient {
    pub tx: mpsc::Sender<DiscoveryRequest>,
    pub rx: Streaming<DiscoveryResponse>,
}

impl AdsClient {
    pub async fn connect(daemon: &Daemon) -> Self {
        Self::connect_to(daemon.xds_addr).await
    }

    pub async fn connect_to(addr: std::net::SocketAddr) -> Self {
        let mut client = AggregatedDiscoveryServiceClient::connect(format!("http://{addr}")).await.unwrap();
        let (tx, rx) = mpsc::channel(8);
        let rx = client.stream_aggregated_resources(ReceiverStream::new(rx)).await.unwrap().into_inner();
        Self { tx, rx }
    }

    pub async fn send(&self, req: DiscoveryRequest) {
        self.tx.send(req).await.unwrap();
    }

    pub async fn recv(&mut self) -> DiscoveryResponse {
        tokio::time::timeout(Duration::from_secs(10), self.rx.message())
            .await
            .expect("a response within 10 s")
            .expect("stream ok")
            .expect("stream open")
    }
}
