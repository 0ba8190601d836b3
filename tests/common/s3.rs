//! S3 for the tests: moto's server (installed into the venv by `scripts/test.sh`), a standard
//! client (boto3, through `scripts/s3_client.py`) and a reader of Delta tables in a bucket.

use arrow::record_batch::RecordBatch;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Credentials moto accepts (any); the tests pass them through config or environment.
pub const ACCESS_KEY: &str = "test-access-key";
pub const SECRET_KEY: &str = "test-secret-key-never-logged";

fn venv() -> PathBuf {
    std::env::var("INGESTD_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/ingestd/venv"))
}

/// A moto S3 server on loopback, in memory; stopped when dropped.
pub struct Moto {
    child: Child,
    pub endpoint: String,
}

impl Moto {
    pub fn start(log: &std::path::Path) -> Moto {
        let bin = venv().join("bin/moto_server");
        assert!(bin.exists(), "no moto server at {}: run scripts/test.sh, which installs it", bin.display());
        let port = super::free_port();
        let child = super::dies_with_test(&mut Command::new(&bin))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).expect("moto log"))
            .spawn()
            .expect("start moto");
        let deadline = Instant::now() + Duration::from_secs(60);
        while super::http(port, "/moto-api/").0 == 0 {
            assert!(Instant::now() < deadline, "moto did not answer on {port}; see {}", log.display());
            std::thread::sleep(Duration::from_millis(200));
        }
        Moto { child, endpoint: format!("http://127.0.0.1:{port}") }
    }

    /// Runs `scripts/s3_client.py ENDPOINT ARGS` (boto3); panics unless it succeeds.
    pub fn client(&self, args: &[&str]) -> String {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/s3_client.py");
        let out = Command::new(venv().join("bin/python"))
            .arg(script)
            .arg(&self.endpoint)
            .args(args)
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .output()
            .expect("run s3_client.py");
        assert!(out.status.success(), "s3_client.py {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The `[sinks.X.s3]` / `[sources.X.s3]` keys for this server, credentials included.
    pub fn config_keys(&self) -> String {
        format!(
            "endpoint = \"{}\"\nregion = \"us-east-1\"\naccess_key_id = \"{ACCESS_KEY}\"\nsecret_access_key = \"{SECRET_KEY}\"\n",
            self.endpoint
        )
    }

    /// The options of [`Moto::config_keys`], as object_store and deltalake take them.
    fn storage_options(&self) -> HashMap<String, String> {
        ingestd::config::S3Config {
            endpoint: Some(self.endpoint.clone()),
            region: Some("us-east-1".into()),
            access_key_id: Some(ACCESS_KEY.into()),
            secret_access_key: Some(ingestd::config::Secret::new(SECRET_KEY)),
            ..Default::default()
        }
        .storage_options()
    }

    /// An object_store client of `bucket` on this server.
    pub fn store(&self, bucket: &str) -> object_store::aws::AmazonS3 {
        let mut builder = object_store::aws::AmazonS3Builder::new().with_bucket_name(bucket);
        for (key, value) in self.storage_options() {
            builder = builder.with_config(key.parse().expect("config key"), value);
        }
        builder.build().expect("s3 store")
    }

    /// The rows of the Delta table at `url` (`s3://bucket/prefix`), read through its log with
    /// the deltalake crate and its data files through object_store.
    pub fn read_delta(&self, url: &str) -> Vec<RecordBatch> {
        use object_store::ObjectStore;
        use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
        deltalake::aws::register_handlers(None);
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(async {
            let table = deltalake::open_table_with_storage_options(url::Url::parse(url).expect("url"), self.storage_options())
                .await
                .expect("open delta table");
            let uris: Vec<String> = table.get_file_uris().expect("file uris").collect();
            let bucket = url.trim_start_matches("s3://").split('/').next().expect("bucket");
            let store = self.store(bucket);
            let mut batches = Vec::new();
            for uri in uris {
                let key = uri.strip_prefix(&format!("s3://{bucket}/")).expect("uri in bucket");
                let location = object_store::path::Path::from_url_path(key).expect("key");
                let bytes = store.get_opts(&location, Default::default()).await.expect("get").bytes().await.expect("body");
                let reader = ParquetRecordBatchReaderBuilder::try_new(bytes).expect("parquet").build().expect("reader");
                batches.extend(reader.map(|b| b.expect("batch")));
            }
            batches
        })
    }
}

/// `files` ATTOM files holding `rows` rows in `dir`, sorted by name.
pub fn stage_attom(dir: &std::path::Path, files: usize, rows: usize, seed: u64) -> Vec<PathBuf> {
    ingestd::sample::write_attom_files(dir, &ingestd::sample::AttomSpec { files, rows, seed }).expect("sample files");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir).expect("staged folder").map(|e| e.expect("entry").path()).collect();
    paths.sort();
    paths
}

/// Neither `ingestd status` nor `ingestd check` shows the secret key of the workspace's config.
pub fn assert_secret_never_shown(ws: &super::Workspace) {
    let status = String::from_utf8_lossy(&ws.ingestd(&["status"]).stdout).to_string();
    let check = ws.ingestd(&["check"]);
    for text in [status, String::from_utf8_lossy(&check.stdout).to_string(), String::from_utf8_lossy(&check.stderr).to_string()] {
        assert!(!text.contains(SECRET_KEY), "secret shown: {text}");
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
