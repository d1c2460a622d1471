//! The Lua scripts of `lua/`, loaded into Redis as one Functions library
//! (`FUNCTION LOAD`) and run with `FCALL`.
//!
//! As a library, `lib.lua`'s helpers are compiled once when the library is
//! loaded, not on every call as a prepended `EVALSHA` script would be. The
//! library's name and every function name carry a hash of its text
//! (`stampede_<v>`, `hold_<v>`), so two versions of the services can run
//! side by side during a rolling deploy, each calling its own functions.
//! The library is loaded on first use: a call that finds its function
//! missing (a new or restarted Redis, `FUNCTION FLUSH`) loads it and retries.

use std::sync::Arc;

use redis::aio::ConnectionLike;
use redis::{Cmd, ErrorKind, FromRedisValue, RedisError, RedisResult, ToRedisArgs};

const LIB: &str = include_str!("../../../lua/lib.lua");

/// Each function of the library: its name and its file in `lua/`.
const BODIES: [(&str, &str); 15] = [
    ("hold", include_str!("../../../lua/hold.lua")),
    ("hold_ga", include_str!("../../../lua/hold_ga.lua")),
    ("release", include_str!("../../../lua/release.lua")),
    ("publish", include_str!("../../../lua/publish.lua")),
    ("confirm", include_str!("../../../lua/confirm.lua")),
    ("queue", include_str!("../../../lua/queue.lua")),
    ("forget", include_str!("../../../lua/forget.lua")),
    ("expire_bucket", include_str!("../../../lua/expire_bucket.lua")),
    ("check_in", include_str!("../../../lua/check_in.lua")),
    ("transfer", include_str!("../../../lua/transfer.lua")),
    ("list", include_str!("../../../lua/list.lua")),
    ("unlist", include_str!("../../../lua/unlist.lua")),
    ("hold_listing", include_str!("../../../lua/hold_listing.lua")),
    ("buy_listing", include_str!("../../../lua/buy_listing.lua")),
    // Last: it calls hold_ga and expire_bucket, which must be defined before it.
    ("hold_best", include_str!("../../../lua/hold_best.lua")),
];

/// The library as Redis loads it.
#[derive(Debug)]
pub struct Library {
    /// A hash of the library's text: the suffix of every name in it.
    pub version: String,
    /// The text given to `FUNCTION LOAD`.
    pub code: String,
}

impl Library {
    fn build() -> Self {
        let mut body = String::with_capacity(LIB.len() + BODIES.iter().map(|(_, b)| b.len() + 64).sum::<usize>());
        body.push_str(LIB);
        for (name, text) in BODIES {
            body.push_str(&format!("\nlocal function {name}(KEYS, ARGV)\n{text}\nend\n"));
        }
        let version = format!("{:012x}", fnv1a(body.as_bytes()) >> 16);
        let mut code = format!("#!lua name=stampede_{version}\n");
        code.push_str(&body);
        for (name, _) in BODIES {
            code.push_str(&format!("redis.register_function('{name}_{version}', {name})\n"));
        }
        Self { version, code }
    }

    fn load_cmd(&self) -> Cmd {
        let mut cmd = redis::cmd("FUNCTION");
        cmd.arg("LOAD").arg(&self.code);
        cmd
    }

    /// Loads the library; one that is already there is fine.
    async fn load_async<C: ConnectionLike>(&self, conn: &mut C) -> RedisResult<()> {
        loaded(self.load_cmd().query_async(conn).await)
    }

    fn load(&self, con: &mut dyn redis::ConnectionLike) -> RedisResult<()> {
        loaded(self.load_cmd().query(con))
    }
}

/// A `FUNCTION LOAD` answer: loaded now, or already there (by another process).
fn loaded(answer: RedisResult<String>) -> RedisResult<()> {
    match answer {
        Err(e) if !e.to_string().contains("already exists") => Err(e),
        _ => Ok(()),
    }
}

fn missing_function(e: &RedisError) -> bool {
    matches!(e.kind(), ErrorKind::Server(_) | ErrorKind::Extension) && e.to_string().contains("Function not found")
}

/// 64-bit FNV-1a: a stable hash of the library's text (the standard
/// library's hasher may change between compiler releases).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// One function of the library.
#[derive(Clone, Debug)]
pub struct Function {
    name: String,
    library: Arc<Library>,
}

impl Function {
    /// The name to `FCALL` (`hold_<version>`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Starts a call with its first key.
    pub fn key<T: ToRedisArgs>(&self, key: T) -> Invocation<'_> {
        let mut inv = Invocation { function: self, keys: Vec::with_capacity(8), args: Vec::with_capacity(8) };
        inv.key(key);
        inv
    }
}

/// A call being built: keys, then arguments, as `redis::ScriptInvocation`.
pub struct Invocation<'f> {
    function: &'f Function,
    keys: Vec<Vec<u8>>,
    args: Vec<Vec<u8>>,
}

impl Invocation<'_> {
    pub fn key<T: ToRedisArgs>(&mut self, key: T) -> &mut Self {
        key.write_redis_args(&mut self.keys);
        self
    }

    pub fn arg<T: ToRedisArgs>(&mut self, arg: T) -> &mut Self {
        arg.write_redis_args(&mut self.args);
        self
    }

    fn cmd(&self) -> Cmd {
        let mut cmd = redis::cmd("FCALL");
        cmd.arg(&self.function.name).arg(self.keys.len()).arg(&self.keys).arg(&self.args);
        cmd
    }

    /// Runs the function, loading the library first if Redis lacks it.
    pub async fn invoke_async<T: FromRedisValue, C: ConnectionLike>(&self, conn: &mut C) -> RedisResult<T> {
        let cmd = self.cmd();
        match cmd.query_async(conn).await {
            Err(e) if missing_function(&e) => {
                self.function.library.load_async(conn).await?;
                cmd.query_async(conn).await
            }
            other => other,
        }
    }

    /// The blocking form, for tests and tools on a plain connection.
    pub fn invoke<T: FromRedisValue>(&self, con: &mut dyn redis::ConnectionLike) -> RedisResult<T> {
        let cmd = self.cmd();
        match cmd.query(con) {
            Err(e) if missing_function(&e) => {
                self.function.library.load(con)?;
                cmd.query(con)
            }
            other => other,
        }
    }
}

/// Every function, ready to call.
pub struct Scripts {
    pub hold: Function,
    pub hold_ga: Function,
    pub release: Function,
    pub publish: Function,
    pub confirm: Function,
    pub queue: Function,
    pub forget: Function,
    pub expire_bucket: Function,
    pub hold_best: Function,
    pub check_in: Function,
    pub transfer: Function,
    pub list: Function,
    pub unlist: Function,
    pub hold_listing: Function,
    pub buy_listing: Function,
    pub library: Arc<Library>,
}

impl Scripts {
    pub fn load() -> Self {
        let library = Arc::new(Library::build());
        let f = |name: &str| Function { name: format!("{name}_{}", library.version), library: library.clone() };
        Self {
            hold: f("hold"),
            hold_ga: f("hold_ga"),
            release: f("release"),
            publish: f("publish"),
            confirm: f("confirm"),
            queue: f("queue"),
            forget: f("forget"),
            expire_bucket: f("expire_bucket"),
            hold_best: f("hold_best"),
            check_in: f("check_in"),
            transfer: f("transfer"),
            list: f("list"),
            unlist: f("unlist"),
            hold_listing: f("hold_listing"),
            buy_listing: f("buy_listing"),
            library,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_library_names_every_function_with_its_version() {
        let s = Scripts::load();
        let v = &s.library.version;
        assert_eq!(v.len(), 12);
        assert!(s.library.code.starts_with(&format!("#!lua name=stampede_{v}\n")));
        for (name, _) in BODIES {
            assert!(s.library.code.contains(&format!("redis.register_function('{name}_{v}', {name})")), "{name}");
        }
        assert_eq!(s.hold.name(), format!("hold_{v}"));
        // The same text gives the same names in every process.
        assert_eq!(Library::build().version, *v);
    }
}
