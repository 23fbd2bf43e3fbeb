//! A release mirror on 127.0.0.1, since no release server can be reached
//! from the tests: files laid out as their projects publish them.

use std::fs;
use std::path::Path;

/// A release mirror on 127.0.0.1 with the official layout, serving the
/// files of `root` (path = URL path) until the test ends.
pub fn serve(root: &Path) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let root = root.to_path_buf();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = String::new();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            reader.read_line(&mut request).unwrap();
            // Read the headers to the blank line so the client's write ends.
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap() > 2 {
                line.clear();
            }
            let path = request.split_whitespace().nth(1).unwrap_or("/");
            let (status, body) = match fs::read(root.join(path.trim_start_matches('/'))) {
                Ok(body) => ("200 OK", body),
                Err(_) => ("404 Not Found", b"not found".to_vec()),
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    format!("http://127.0.0.1:{port}/release/")
}

pub fn sha256(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}

/// Writes `file` into `dir` and lists it in `sums` beside another
/// platform's line, as release pages do.
pub fn publish(dir: &Path, file: &str, bytes: &[u8], sums: &str) {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join(file), bytes).unwrap();
    let other = "0".repeat(64);
    fs::write(
        dir.join(sums),
        format!(
            "{other}  other-platform.tar.gz\n{}  {file}\n",
            sha256(bytes)
        ),
    )
    .unwrap();
}

/// A tar.gz of `files` (path, content), stored uncompressed: tests want
/// it fast, and a reader cannot tell.
pub fn targz(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::none(),
    ));
    for (path, content) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o755);
        header.set_cksum();
        tar.append_data(&mut header, path, *content).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
}
