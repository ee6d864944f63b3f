//! `docs/specs.md` lists the spec fields the code accepts: its table between the markers is
//! rendered from `mcp_raft::registry::spec::fields`, and this test fails when they differ.
//! `MCPD_UPDATE_DOCS=1 cargo test -p mcp-raft --test spec_docs` rewrites the block.

use std::path::PathBuf;

use mcp_raft::registry::spec::fields;

const BEGIN: &str =
    "<!-- spec-fields:begin (generated from raft/src/registry/spec/fields.rs) -->\n";
const END: &str = "<!-- spec-fields:end -->";

#[test]
fn docs_field_table_matches_the_code() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/specs.md");
    let docs = std::fs::read_to_string(&path).unwrap();
    let (before, rest) = docs
        .split_once(BEGIN)
        .expect("docs/specs.md has the begin marker");
    let (current, after) = rest
        .split_once(END)
        .expect("docs/specs.md has the end marker");
    let expected = fields::markdown();
    if current == expected {
        return;
    }
    if std::env::var_os("MCPD_UPDATE_DOCS").is_some() {
        std::fs::write(&path, format!("{before}{BEGIN}{expected}{END}{after}")).unwrap();
        return;
    }
    panic!(
        "docs/specs.md's field table differs from raft/src/registry/spec/fields.rs; \
         rerun with MCPD_UPDATE_DOCS=1 or put this between the markers:\n\n{expected}"
    );
}
