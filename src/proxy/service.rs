//! The gRPC face of [`Store`]: containerd's `Snapshots` service through the
//! `containerd-snapshots` crate (containerd's protos and a tonic server
//! trait), on a unix socket.
//!
//! Every call runs the store's blocking work on tokio's blocking pool, so
//! concurrent calls (containerd unpacks several layers and images at once)
//! proceed side by side; the store itself holds no lock across I/O.
//!
//! Each mutating call is logged to stderr as one line,
//! `strata-snapshotter: <call> <key> …`, so tests and operators can count
//! what containerd asked for.

use super::{Code, Filters, Info, ProxyError, Store};
use crate::mount::Mount;
use crate::snapshot::Kind;
use containerd_snapshots::api::types::Mount as GrpcMount;
use containerd_snapshots::tonic::{self, Status};
use containerd_snapshots::{Info as GrpcInfo, Kind as GrpcKind, Snapshotter as GrpcSnapshotter, Usage as GrpcUsage};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

struct Service {
    store: Arc<Store>,
}

impl From<ProxyError> for Status {
    fn from(e: ProxyError) -> Status {
        let message = e.to_string();
        match e.code() {
            Code::AlreadyExists => Status::already_exists(message),
            Code::NotFound => Status::not_found(message),
            Code::FailedPrecondition => Status::failed_precondition(message),
            Code::InvalidArgument => Status::invalid_argument(message),
            Code::Internal => Status::internal(message),
        }
    }
}

/// containerd's mount, performed by containerd with `mount(2)`: the
/// options are the classic comma-separated ones (`lowerdir=…`, `rbind`).
fn grpc_mount(m: Mount) -> GrpcMount {
    GrpcMount { r#type: m.kind, source: m.source, target: String::new(), options: m.options }
}

fn grpc_info(i: Info) -> GrpcInfo {
    GrpcInfo {
        kind: match i.kind {
            Kind::View => GrpcKind::View,
            Kind::Active => GrpcKind::Active,
            Kind::Committed => GrpcKind::Committed,
        },
        name: i.name,
        parent: i.parent,
        labels: i.labels.into_iter().collect(),
        created_at: i.created,
        updated_at: i.updated,
    }
}

impl Service {
    /// Runs `f` on the blocking pool.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, ProxyError> + Send + 'static,
    ) -> Result<T, Status> {
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || f(&store)).await {
            Ok(result) => result.map_err(Status::from),
            Err(e) => Err(Status::internal(format!("snapshot call failed: {e}"))),
        }
    }
}

// The crate's trait fixes tonic's `Status` (176 bytes) as the error type.
#[allow(clippy::result_large_err)]
#[tonic::async_trait]
impl GrpcSnapshotter for Service {
    type Error = Status;

    async fn stat(&self, key: String) -> Result<GrpcInfo, Status> {
        self.run(move |s| s.stat(&key)).await.map(grpc_info)
    }

    async fn update(&self, info: GrpcInfo, fieldpaths: Option<Vec<String>>) -> Result<GrpcInfo, Status> {
        let info = Info {
            name: info.name,
            parent: info.parent,
            kind: Kind::Active,
            labels: info.labels.into_iter().collect(),
            created: info.created_at,
            updated: info.updated_at,
        };
        eprintln!("strata-snapshotter: update {:?} {:?}", info.name, fieldpaths.as_deref().unwrap_or_default());
        self.run(move |s| s.update(info, &fieldpaths.unwrap_or_default())).await.map(grpc_info)
    }

    async fn usage(&self, key: String) -> Result<GrpcUsage, Status> {
        let u = self.run(move |s| s.usage(&key)).await?;
        Ok(GrpcUsage {
            size: i64::try_from(u.size).unwrap_or(i64::MAX),
            inodes: i64::try_from(u.inodes).unwrap_or(i64::MAX),
        })
    }

    async fn mounts(&self, key: String) -> Result<Vec<GrpcMount>, Status> {
        let m = self.run(move |s| s.mounts(&key)).await?;
        Ok(m.into_iter().map(grpc_mount).collect())
    }

    async fn prepare(
        &self,
        key: String,
        parent: String,
        labels: HashMap<String, String>,
    ) -> Result<Vec<GrpcMount>, Status> {
        eprintln!("strata-snapshotter: prepare {key:?} parent {parent:?}");
        let m = self.run(move |s| s.create(Kind::Active, &key, &parent, labels)).await?;
        Ok(m.into_iter().map(grpc_mount).collect())
    }

    async fn view(
        &self,
        key: String,
        parent: String,
        labels: HashMap<String, String>,
    ) -> Result<Vec<GrpcMount>, Status> {
        eprintln!("strata-snapshotter: view {key:?} parent {parent:?}");
        let m = self.run(move |s| s.create(Kind::View, &key, &parent, labels)).await?;
        Ok(m.into_iter().map(grpc_mount).collect())
    }

    async fn commit(&self, name: String, key: String, labels: HashMap<String, String>) -> Result<(), Status> {
        eprintln!("strata-snapshotter: commit {key:?} as {name:?}");
        self.run(move |s| s.commit(&name, &key, labels)).await
    }

    async fn remove(&self, key: String) -> Result<(), Status> {
        eprintln!("strata-snapshotter: remove {key:?}");
        self.run(move |s| s.remove(&key)).await
    }

    async fn clear(&self) -> Result<(), Status> {
        let n = self.run(|s| s.cleanup()).await?;
        eprintln!("strata-snapshotter: cleanup removed {n}");
        Ok(())
    }

    type InfoStream = tokio_stream::Iter<std::vec::IntoIter<Result<GrpcInfo, Status>>>;

    async fn list(&self, _snapshotter: String, filters: Vec<String>) -> Result<Self::InfoStream, Status> {
        let infos = self
            .run(move |s| {
                let filters = Filters::parse(&filters)?;
                Ok(s.list(&filters))
            })
            .await?;
        Ok(tokio_stream::iter(infos.into_iter().map(|i| Ok(grpc_info(i))).collect::<Vec<_>>()))
    }
}

/// Serves `store` on the unix socket `address` until SIGINT or SIGTERM.
/// A stale socket file at `address` is replaced; the socket is removed
/// on the way out.
pub fn serve(store: Store, address: &Path) -> Result<(), ProxyError> {
    let failed =
        |source: Box<dyn std::error::Error + Send + Sync>| ProxyError::Serve { path: address.to_owned(), source };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| failed(e.into()))?;
    runtime.block_on(async {
        // The handlers exist before the socket does: a SIGTERM sent as soon
        // as the socket accepts (systemd, a test that stops at once) stops
        // the service cleanly instead of killing it by default action.
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).map_err(|e| failed(e.into()))?;
        let mut interrupt = signal(SignalKind::interrupt()).map_err(|e| failed(e.into()))?;
        if let Some(dir) = address.parent() {
            std::fs::create_dir_all(dir).map_err(|e| ProxyError::Io(crate::root::IoError::new(dir, e)))?;
        }
        match std::fs::symlink_metadata(address) {
            Ok(md) if std::os::unix::fs::FileTypeExt::is_socket(&md.file_type()) => {
                std::fs::remove_file(address).map_err(|e| ProxyError::Io(crate::root::IoError::new(address, e)))?
            }
            _ => {}
        }
        let listener = tokio::net::UnixListener::bind(address).map_err(|e| failed(e.into()))?;
        let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
        let service = containerd_snapshots::server(Arc::new(Service { store: Arc::new(store) }));
        eprintln!("strata-snapshotter: serving on {}", address.display());
        let stop = async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = interrupt.recv() => {}
            }
        };
        let result =
            tonic::transport::Server::builder().add_service(service).serve_with_incoming_shutdown(incoming, stop).await;
        let _ = std::fs::remove_file(address);
        result.map_err(|e| failed(e.into()))
    })
}
