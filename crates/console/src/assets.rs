//! The console's JavaScript and CSS: pinned files in `assets/`, embedded in the binary,
//! served under content-hashed names (`/assets/htmx-2.0.11.min.3f2a9c1e.js`) with a year of
//! immutable caching, an ETag, and gzip or brotli compressed once, when first asked for.
//! Templates name an asset by its file name ([`url`]); the hash changes the URL whenever the
//! file changes, so no browser ever keeps a stale copy.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Write;
use std::sync::OnceLock;

use base64::Engine;
use poem::http::{HeaderValue, StatusCode, header};
use poem::web::Path;
use poem::{Body, Request, Response, handler};
use sha2::{Digest, Sha256};

/// The files under `assets/` (licenses included, so they travel with the code they cover).
#[derive(rust_embed::Embed)]
#[folder = "assets/"]
struct Files;

/// One asset, ready to serve.
struct Asset {
    /// `htmx-2.0.11.min.3f2a9c1e.js`.
    hashed: String,
    content_type: &'static str,
    etag: String,
    plain: Cow<'static, [u8]>,
    gzip: OnceLock<Vec<u8>>,
    brotli: OnceLock<Vec<u8>>,
}

/// Every asset by its file name and by its hashed name.
struct Table {
    by_name: HashMap<String, usize>,
    by_hashed: HashMap<String, usize>,
    assets: Vec<Asset>,
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        _ => "text/plain; charset=utf-8",
    }
}

/// `name` with the first 8 hex digits of its content's SHA-256 before the extension.
fn hashed_name(name: &str, digest: &[u8]) -> String {
    let short: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    match name.rsplit_once('.') {
        Some((stem, ext)) => format!("{stem}.{short}.{ext}"),
        None => format!("{name}.{short}"),
    }
}

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table = Table {
            by_name: HashMap::new(),
            by_hashed: HashMap::new(),
            assets: Vec::new(),
        };
        for name in Files::iter() {
            let Some(file) = Files::get(&name) else {
                continue;
            };
            let digest = Sha256::digest(&file.data);
            let hashed = hashed_name(&name, &digest);
            let etag = format!(
                "\"{}\"",
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..12])
            );
            let index = table.assets.len();
            table.by_name.insert(name.to_string(), index);
            table.by_hashed.insert(hashed.clone(), index);
            table.assets.push(Asset {
                hashed,
                content_type: content_type(&name),
                etag,
                plain: file.data,
                gzip: OnceLock::new(),
                brotli: OnceLock::new(),
            });
        }
        table
    })
}

/// The URL of asset `name` (a file of `assets/`). An unknown name is a programming error and
/// yields a URL that answers 404, which the page tests catch.
pub fn url(name: &str) -> String {
    let table = table();
    match table.by_name.get(name) {
        Some(&i) => format!("/assets/{}", table.assets[i].hashed),
        None => format!("/assets/missing/{name}"),
    }
}

/// The bytes of asset `name`, for tests and tools (its size against the page budget).
pub fn bytes(name: &str) -> Option<&'static [u8]> {
    let table = table();
    table
        .by_name
        .get(name)
        .map(|&i| table.assets[i].plain.as_ref())
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut out = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    // Writing to a Vec cannot fail.
    let _ = out.write_all(data);
    out.finish().unwrap_or_default()
}

fn brotli(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut writer = brotli::CompressorWriter::new(&mut out, 4096, 11, 22);
        let _ = writer.write_all(data);
    }
    out
}

/// The encodings the client accepts, most preferred first among those we have.
fn accepts(req: &Request, encoding: &str) -> bool {
    req.headers()
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim())
        .any(|v| {
            let mut parts = v.split(';');
            parts.next() == Some(encoding) && !parts.any(|q| q.trim() == "q=0")
        })
}

/// `GET /assets/{hashed name}`.
#[handler]
pub fn serve(Path(file): Path<String>, req: &Request) -> Response {
    let table = table();
    let Some(&index) = table.by_hashed.get(&file) else {
        return Response::builder()
            .status(StatusCode::NOT_FOUND)
            .content_type("text/plain; charset=utf-8")
            .body("no such asset");
    };
    let asset = &table.assets[index];
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().trim_start_matches("W/") == asset.etag)
        });
    let builder = Response::builder()
        .header(header::ETAG, asset.etag.as_str())
        .header(header::CACHE_CONTROL, "public, max-age=31536000, immutable")
        .header(header::VARY, "Accept-Encoding")
        .header("X-Content-Type-Options", "nosniff");
    if fresh {
        return builder.status(StatusCode::NOT_MODIFIED).finish();
    }
    let compressible = asset.content_type.starts_with("text/");
    let (body, encoding): (&[u8], Option<&str>) = if compressible && accepts(req, "br") {
        (
            asset.brotli.get_or_init(|| brotli(&asset.plain)),
            Some("br"),
        )
    } else if compressible && accepts(req, "gzip") {
        (asset.gzip.get_or_init(|| gzip(&asset.plain)), Some("gzip"))
    } else {
        (asset.plain.as_ref(), None)
    };
    let mut resp = builder
        .content_type(asset.content_type)
        .body(Body::from_vec(body.to_vec()));
    if let Some(encoding) = encoding {
        resp.headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding));
    }
    resp
}

/// The gzipped size of asset `name`, as a browser would fetch it (tests hold the page budget).
pub fn gzipped_len(name: &str) -> Option<usize> {
    bytes(name).map(|b| gzip(b).len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_has_a_hashed_url_and_the_hash_follows_the_content() {
        let htmx = url("htmx-2.0.11.min.js");
        assert!(htmx.starts_with("/assets/htmx-2.0.11.min."), "{htmx}");
        assert!(htmx.ends_with(".js"));
        assert_ne!(
            hashed_name("a.js", &Sha256::digest(b"one")),
            hashed_name("a.js", &Sha256::digest(b"two"))
        );
        assert!(url("nope.js").contains("missing"));
    }

    #[test]
    fn compressed_copies_decompress_to_the_file() {
        let plain = bytes("console.css").unwrap_or_default();
        let mut back = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(gzip(plain).as_slice()),
            &mut back,
        )
        .unwrap_or_default();
        assert_eq!(back, plain);
        let mut unbrotli = Vec::new();
        std::io::Read::read_to_end(
            &mut brotli::Decompressor::new(brotli(plain).as_slice(), 4096),
            &mut unbrotli,
        )
        .unwrap_or_default();
        assert_eq!(unbrotli, plain);
    }
}
