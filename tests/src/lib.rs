//! keyledger's integration harness: a real nats-server per test (free port,
//! temp store dir, removed on drop), the real admin service and API nodes on
//! port 0, and an HTTP client to drive them.
//!
//! ```text
//!   System::start()
//!     ├─ NatsServer   nats-server -p -1 -js -sd <tmp>   (port read from its ports file)
//!     ├─ admin        keyledger_admin::Admin on 127.0.0.1:0
//!     └─ nodes[0..n]  keyledger_node::Node   on 127.0.0.1:0
//! ```

mod browser;
mod cluster;
mod nats;
mod otlp;
mod process;
mod proxy;
mod stats;
mod system;

pub use browser::Browser;
pub use cluster::{NatsCluster, cluster_config};
pub use nats::{NatsServer, nats_server_bin};
pub use otlp::{OtlpReceiver, ReceivedSpan};
pub use process::{Process, free_port};
pub use proxy::TcpProxy;
pub use stats::Summary;
pub use system::{
    CreatedKey, RunningAdmin, RunningNode, System, applied_seq, becomes_ready, bootstrap_admin_key,
    eventually, keyledger_bin, verify_at,
};
