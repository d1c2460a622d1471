//! The Lua scripts, compiled in from `lua/` with `lib.lua` prepended, run by
//! SHA (the client falls back to loading them on `NOSCRIPT`).

use redis::Script;

const LIB: &str = include_str!("../../../lua/lib.lua");

/// Every script, ready to invoke.
pub struct Scripts {
    pub hold: Script,
    pub hold_ga: Script,
    pub release: Script,
    pub publish: Script,
    pub confirm: Script,
    pub queue: Script,
}

/// `lib.lua` followed by `body`: the exact text Redis runs.
pub fn source(body: &str) -> String {
    format!("{LIB}\n{body}")
}

impl Scripts {
    pub fn load() -> Self {
        Self {
            hold: Script::new(&source(include_str!("../../../lua/hold.lua"))),
            hold_ga: Script::new(&source(include_str!("../../../lua/hold_ga.lua"))),
            release: Script::new(&source(include_str!("../../../lua/release.lua"))),
            publish: Script::new(&source(include_str!("../../../lua/publish.lua"))),
            confirm: Script::new(&source(include_str!("../../../lua/confirm.lua"))),
            queue: Script::new(&source(include_str!("../../../lua/queue.lua"))),
        }
    }
}

/// The full text of a script by file name (`hold`, `release`, …), for
/// tools such as the benchmark that load it into `redis-benchmark`.
pub fn named(name: &str) -> Option<String> {
    let body = match name {
        "hold" => include_str!("../../../lua/hold.lua"),
        "hold_ga" => include_str!("../../../lua/hold_ga.lua"),
        "release" => include_str!("../../../lua/release.lua"),
        "publish" => include_str!("../../../lua/publish.lua"),
        "confirm" => include_str!("../../../lua/confirm.lua"),
        "queue" => include_str!("../../../lua/queue.lua"),
        _ => return None,
    };
    Some(source(body))
}
