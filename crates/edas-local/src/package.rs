//! The package cache: a `PackageUrl` is fetched once per (URL, `PackageVersion`) into
//! `<data_dir>/packages/<sha256 of url and version>/<file name>`, and every instance of every
//! revision with that pair runs the cached file. A `file://` package is copied too, so a revision
//! keeps running the bytes it was deployed with even if the original file changes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt as _;

/// How long one download may take.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(600);

/// The cache (one per runtime).
pub struct PackageCache {
    dir: PathBuf,
    locks: Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>,
    client: OnceLock<reqwest::Client>,
}

impl PackageCache {
    pub fn new(dir: PathBuf) -> PackageCache {
        PackageCache {
            dir,
            locks: Mutex::new(HashMap::new()),
            client: OnceLock::new(),
        }
    }

    /// Where the package of (`url`, `version`) is, fetching it first if needed.
    pub async fn fetch(&self, url: &str, version: &str) -> Result<PathBuf, String> {
        let key = hex::encode(Sha256::digest(format!("{url}\n{version}").as_bytes()));
        let dir = self.dir.join(key);
        let file = dir.join(file_name(url));
        if is_file(&file).await {
            return Ok(file);
        }
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
            locks.entry(dir.clone()).or_default().clone()
        };
        let _guard = lock.lock().await;
        if is_file(&file).await {
            return Ok(file);
        }
        // Instances (another user) run the file by its path but cannot list the cache.
        let dirs = [self.dir.clone(), dir.clone()];
        tokio::task::spawn_blocking(move || {
            dirs.iter().try_for_each(|d| {
                crate::make_dir(d, 0o711)
                    .map_err(|e| format!("cannot create `{}`: {e}", d.display()))
            })
        })
        .await
        .map_err(|e| format!("cannot create the package cache: {e}"))??;
        let partial = dir.join(format!(".partial-{}", uuid::Uuid::new_v4().simple()));
        let fetched = match url.split_once("://") {
            Some((scheme, path)) if scheme.eq_ignore_ascii_case("file") => {
                tokio::fs::copy(path, &partial)
                    .await
                    .map(drop)
                    .map_err(|e| format!("cannot read `{path}`: {e}"))
            }
            _ => tokio::time::timeout(DOWNLOAD_TIMEOUT, self.download(url, &partial))
                .await
                .unwrap_or_else(|_| Err(format!("download timed out after {DOWNLOAD_TIMEOUT:?}"))),
        };
        let done = match fetched {
            Ok(()) => {
                use std::os::unix::fs::PermissionsExt as _;
                // A copy keeps the source's mode; the instance's user must be able to read it.
                let readable = std::fs::Permissions::from_mode(0o644);
                match tokio::fs::set_permissions(&partial, readable).await {
                    Ok(()) => tokio::fs::rename(&partial, &file)
                        .await
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                }
            }
            Err(e) => Err(e),
        };
        if let Err(e) = done {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(format!("cannot fetch `PackageUrl` `{url}`: {e}"));
        }
        Ok(file)
    }

    async fn download(&self, url: &str, to: &Path) -> Result<(), String> {
        let client = match self.client.get() {
            Some(c) => c,
            None => {
                let built = reqwest::Client::builder()
                    .connect_timeout(Duration::from_secs(30))
                    .build()
                    .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
                self.client.get_or_init(|| built)
            }
        };
        let mut response = client.get(url).send().await.map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("the server answered {}", response.status()));
        }
        let mut out = tokio::fs::File::create(to)
            .await
            .map_err(|e| e.to_string())?;
        while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
            out.write_all(&chunk).await.map_err(|e| e.to_string())?;
        }
        out.flush().await.map_err(|e| e.to_string())?;
        out.sync_all().await.map_err(|e| e.to_string())
    }
}

/// Whether `path` is a regular file (following links), as [`Path::is_file`], off the workers.
async fn is_file(path: &Path) -> bool {
    tokio::fs::metadata(path).await.is_ok_and(|m| m.is_file())
}

/// The URL's last path segment if it is a plain file name, else `package.jar`.
fn file_name(url: &str) -> String {
    let path = url.split(['?', '#']).next().unwrap_or_default();
    let last = path.rsplit('/').next().unwrap_or_default();
    let plain = !last.is_empty()
        && last != "."
        && last != ".."
        && !last.contains("://")
        && last
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-+".contains(&b));
    if plain {
        last.to_owned()
    } else {
        "package.jar".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt as _;

    #[test]
    fn file_names_come_from_the_url_when_plain() {
        assert_eq!(file_name("https://x/y/app-1.0.jar?sig=abc"), "app-1.0.jar");
        assert_eq!(file_name("https://x/y/"), "package.jar");
        assert_eq!(file_name("https://x/%2e%2e"), "package.jar");
    }

    #[tokio::test]
    async fn a_file_package_is_copied_once_per_version() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("app.jar");
        std::fs::write(&source, "v1").unwrap();
        let cache = PackageCache::new(dir.path().join("cache"));
        let url = format!("file://{}", source.display());
        let first = cache.fetch(&url, "1").await.unwrap();
        std::fs::write(&source, "v2").unwrap();
        assert_eq!(cache.fetch(&url, "1").await.unwrap(), first);
        assert_eq!(
            std::fs::read_to_string(&first).unwrap(),
            "v1",
            "the cached bytes are kept"
        );
        let second = cache.fetch(&url, "2").await.unwrap();
        assert_eq!(std::fs::read_to_string(second).unwrap(), "v2");
        let err = cache
            .fetch("file:///no/such/file.jar", "1")
            .await
            .unwrap_err();
        assert!(err.contains("/no/such/file.jar"), "{err}");
    }

    #[tokio::test]
    async fn an_http_package_is_downloaded_once() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let mut served = 0;
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = vec![0u8; 4096];
                let n = s.read(&mut buf).await.unwrap();
                let status = if String::from_utf8_lossy(&buf[..n]).starts_with("GET /missing") {
                    "404 Not Found"
                } else {
                    served += 1;
                    "200 OK"
                };
                let body = format!("jar bytes {served}");
                let answer = format!(
                    "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                s.write_all(answer.as_bytes()).await.unwrap();
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let cache = PackageCache::new(dir.path().to_path_buf());
        let url = format!("http://127.0.0.1:{port}/app.jar");
        let file = cache.fetch(&url, "7").await.unwrap();
        assert_eq!(cache.fetch(&url, "7").await.unwrap(), file);
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "jar bytes 1");
        let err = cache
            .fetch(&format!("http://127.0.0.1:{port}/missing.jar"), "7")
            .await
            .unwrap_err();
        assert!(err.contains("404"), "{err}");
        server.abort();
    }
}
