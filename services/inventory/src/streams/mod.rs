//! Reading the event streams through a consumer group: the machinery every
//! stream worker (the persister, the notifier) shares.
//!
//! A [`GroupReader`] follows every published event's stream
//! (`<p>:{ev:E}:stream`, found in the events set and re-discovered on an
//! interval), makes sure its group exists on each, and hands out batches:
//! first any entries idle in a dead consumer's pending list (claimed with
//! `XAUTOCLAIM`), else new entries (`XREADGROUP … BLOCK` on a connection of
//! its own, since a blocking read must not share the 2 s timeout of the
//! service's connection). Delivery is at least once: the worker acks after
//! its effect is durable, and a crash before the ack means another delivery
//! later. A message delivered more than `max_deliveries` times, or one the
//! worker rejects, goes to the event's dead-letter stream
//! (`<p>:{ev:E}:dead`, same hash tag) with the error, the group and its
//! original id, and is acked in the same transaction: never dropped, never
//! blocking the rest.
//!
//! The module also computes what a stream may lose: [`trim_acknowledged`]
//! trims only below the first entry some group has not acknowledged, over
//! every group on the stream.

mod entry;
mod id;
mod info;
mod reader;
mod telemetry;
mod trim;

pub use entry::{Entry, dead_letter_key};
pub use id::StreamId;
pub use info::{GroupInfo, StreamInfo, stream_info};
pub use reader::{GroupReader, PERSISTER_GROUP, ReaderOptions, consumer_name, ensure_group};
pub use telemetry::{describe_metrics, record_metrics};
pub use trim::{trim_acknowledged, trim_below};
