//! Known defects of Kubernetes builds, told by the binaries' content, so
//! that a cache filled by an older build recipe is recognised whatever its
//! manifest says.

use std::path::Path;

use memchr::memmem;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Defect {
    /// github.com/modern-go/reflect2 before 1.0.2 compiled with Go 1.18 or
    /// later: it calls the runtime's map iterator with the signature it had
    /// before, so iterating a map through json-iterator (unstructured
    /// objects, CRDs, webhooks) crashes the process with "fatal error: fault"
    /// (modern-go/reflect2#26). Kubernetes v1.20 built from Debian's source
    /// with Debian's Go 1.19 and the vendored reflect2 1.0.1 has it.
    Reflect2MapIteration,
}

impl Defect {
    pub fn describe(self) -> &'static str {
        match self {
            Defect::Reflect2MapIteration => {
                "built with Go 1.18 or later and reflect2 older than 1.0.2, whose map \
                 iteration crashes the API server (\"fatal error: fault\", modern-go/reflect2#26)"
            }
        }
    }
}

/// Go writes this header into every binary it links; the byte after the
/// pointer size holds flags, and flag 2 (version and module strings inline)
/// exists from Go 1.18 on.
const BUILDINFO_MAGIC: &[u8] = b"\xff Go buildinf:";
const BUILDINFO_INLINE_STRINGS: u8 = 0x2;

fn built_with_go_1_18_or_later(binary: &[u8]) -> bool {
    memmem::find(binary, BUILDINFO_MAGIC)
        .and_then(|at| binary.get(at + BUILDINFO_MAGIC.len() + 1))
        .is_some_and(|flags| flags & BUILDINFO_INLINE_STRINGS != 0)
}

/// reflect2 1.0.2 moved map iteration into files per Go version; the
/// function table keeps the source file names even in stripped binaries.
fn links_reflect2_before_1_0_2(binary: &[u8]) -> bool {
    memmem::find(binary, b"/modern-go/reflect2/").is_some()
        && memmem::find(binary, b"/modern-go/reflect2/go_above_118.go").is_none()
}

pub fn of_content(binary: &[u8]) -> Vec<Defect> {
    let mut found = Vec::new();
    if built_with_go_1_18_or_later(binary) && links_reflect2_before_1_0_2(binary) {
        found.push(Defect::Reflect2MapIteration);
    }
    found
}

/// The defects of every file, each once.
pub fn of_files<'a>(paths: impl IntoIterator<Item = &'a Path>) -> std::io::Result<Vec<Defect>> {
    let mut found = Vec::new();
    for path in paths {
        found.extend(of_content(&std::fs::read(path)?));
    }
    found.sort();
    found.dedup();
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A binary as far as the checks look: the build-info header with its
    /// flags, and the source files its function table names.
    fn binary(flags: u8, files: &[&str]) -> Vec<u8> {
        let mut bytes = b"\x7fELF padding".to_vec();
        bytes.extend_from_slice(BUILDINFO_MAGIC);
        bytes.extend_from_slice(&[8, flags]);
        for file in files {
            bytes.extend_from_slice(b"\0k8s.io/kubernetes/vendor/github.com");
            bytes.extend_from_slice(file.as_bytes());
        }
        bytes
    }

    #[test]
    fn reflect2_1_0_1_under_go_1_18_is_a_defect_and_nothing_else_is() {
        let old = ["/modern-go/reflect2/unsafe_map.go"];
        let fixed = [
            "/modern-go/reflect2/unsafe_map.go",
            "/modern-go/reflect2/go_above_118.go",
        ];
        // Go 1.19 with the vendored 1.0.1: Debian's source built as it is.
        assert_eq!(of_content(&binary(2, &old)), [Defect::Reflect2MapIteration]);
        // The same with reflect2 1.0.2.
        assert!(of_content(&binary(2, &fixed)).is_empty());
        // Official v1.20 releases: Go 1.15, whose header has no inline flag.
        assert!(of_content(&binary(0, &old)).is_empty());
        // Go 1.17 with 1.0.2 (official v1.23).
        assert!(of_content(&binary(0, &["/modern-go/reflect2/go_below_118.go"])).is_empty());
        // A binary without reflect2, or not a Go binary at all.
        assert!(of_content(&binary(2, &[])).is_empty());
        assert!(of_content(b"#!/bin/sh\necho v1.20.2\n").is_empty());
    }
}
