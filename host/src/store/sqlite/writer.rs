//! SQLite's decision path on two threads of its own: one writer, which owns
//! a connection and commits every decision, charge and usage record waiting
//! as one transaction (group commit), and one reader for the token and fact
//! reads, so a read never waits behind a commit's fsync.
//!
//! SQLite has one write lock, so more writer connections only queue on it.
//! Through sqlx every statement is a hop to a connection's worker thread and
//! back through the async runtime, which on two cores costs more than the
//! statement; here the statements run on the threads' own connections, and
//! one commit (one fsync) covers every request waiting at that moment. Each
//! caller is answered only after the transaction holding its rows has
//! committed.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension as _, params};
use tokio::sync::{mpsc, oneshot};

use crate::store::{
    Cents, DecisionRecord, FACTS_SQL, Facts, FactsRow, GENESIS_HASH, Publication, StoreError, TOKEN_SQL, TokenRecord, new_id, now,
};

/// Requests waiting for the writer, at most.
const QUEUE: usize = 4096;
/// Jobs committed in one transaction, at most.
const MAX_BATCH: usize = 256;

/// A handle to the writer and reader threads; cloning it shares them.
#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Write>,
    reads: mpsc::Sender<Read>,
}

/// A read on the reader's connection; it answers its caller itself.
type Read = Box<dyn FnOnce(&Connection) + Send>;

/// What recording a publication decision did.
#[expect(
    clippy::large_enum_variant,
    reason = "built and moved once per decision; a box would only add an allocation"
)]
pub enum Recorded {
    /// Recorded now: the record, and the publication when it was allowed and charged.
    Decided(DecisionRecord, Option<Publication>),
    /// The idempotency key was claimed before: the caller answers from that claim.
    AlreadyClaimed,
}

/// A decision to record: with an idempotency claim and a price when it is a publication.
struct Decision {
    claim: Option<(String, String)>,
    record: DecisionRecord,
    price: Cents,
}

#[expect(
    clippy::large_enum_variant,
    reason = "built and moved once per decision; a box would only add an allocation"
)]
enum Write {
    Decide(Decision, oneshot::Sender<Result<Recorded, StoreError>>),
    Usage(Usage, oneshot::Sender<Result<(), StoreError>>),
    Touch(String, oneshot::Sender<Result<(), StoreError>>),
}

/// One API-key request to count.
pub struct Usage {
    /// The key.
    pub key_id: String,
    /// Its workspace.
    pub workspace_id: String,
    /// The HTTP method.
    pub method: String,
    /// The route pattern.
    pub route: String,
    /// The answer's status.
    pub status: u16,
}

impl Writer {
    /// Opens two connections to the (migrated) database file at `path` and starts the writer and reader threads.
    pub fn start(path: &Path) -> Result<Self, StoreError> {
        let connection = open(path)?;
        let (jobs, queue) = mpsc::channel(QUEUE);
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run(connection, queue))
            .map_err(|err| StoreError::Unavailable(format!("cannot start the database writer: {err}")))?;
        let reader = open(path)?;
        let (reads, mut waiting) = mpsc::channel::<Read>(QUEUE);
        std::thread::Builder::new()
            .name("sqlite-reader".into())
            .spawn(move || {
                while let Some(read) = waiting.blocking_recv() {
                    read(&reader);
                }
            })
            .map_err(|err| StoreError::Unavailable(format!("cannot start the database reader: {err}")))?;
        Ok(Self { jobs, reads })
    }
}

/// A connection to the database file at `path`, set up as the writer and reader need.
fn open(path: &Path) -> Result<Connection, StoreError> {
    let connection = Connection::open(path).map_err(database)?;
    // FULL: a commit is on disk (WAL fsync) before anyone is answered,
    // so it survives a power loss, not only a crash.
    // A 64 MiB page cache and a mapped file: with millions of decisions,
    // inserts into the random-keyed unique indexes touch pages all over them.
    connection
        .execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000; \
                 PRAGMA cache_size = -65536; PRAGMA mmap_size = 1073741824;",
        )
        .map_err(database)?;
    connection.set_prepared_statement_cache_capacity(32);
    Ok(connection)
}

impl Writer {
    /// Reads what a decision rests on.
    pub async fn facts(&self, workspace_id: &str, draft_id: &str, destination_id: &str, claim: Option<&str>) -> Result<Facts, StoreError> {
        let (workspace_id, draft_id, destination_id) = (workspace_id.to_owned(), draft_id.to_owned(), destination_id.to_owned());
        let claim = claim.map(str::to_owned);
        self.read(move |connection| read_facts(connection, &workspace_id, &draft_id, &destination_id, claim.as_deref()))
            .await
    }

    /// Finds a token by its hash.
    pub async fn token(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        let hash = hash.to_owned();
        self.read(move |connection| read_token(connection, &hash)).await
    }

    /// Runs `work` on the reader's connection: one thread and one prepared
    /// statement cache, with no hop through sqlx's worker threads.
    async fn read<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        let read: Read = Box::new(move |connection| drop(reply.send(work(connection))));
        self.reads.send(read).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Records a dry run: no charge, no idempotency key.
    pub async fn record(&self, record: DecisionRecord) -> Result<DecisionRecord, StoreError> {
        let decision = Decision {
            claim: None,
            record,
            price: 0,
        };
        match self.ask(|reply| Write::Decide(decision, reply)).await? {
            Recorded::Decided(record, _) => Ok(record),
            Recorded::AlreadyClaimed => Err(StoreError::Unavailable("a dry run claims no key".into())),
        }
    }

    /// Records a publication decision under an idempotency key; an allow is charged `price`.
    pub async fn publish(&self, key: &str, fingerprint: &str, record: DecisionRecord, price: Cents) -> Result<Recorded, StoreError> {
        let decision = Decision {
            claim: Some((key.to_owned(), fingerprint.to_owned())),
            record,
            price,
        };
        self.ask(|reply| Write::Decide(decision, reply)).await
    }

    /// Counts an API-key request and marks the key as used.
    pub async fn usage(&self, usage: Usage) -> Result<(), StoreError> {
        self.ask(|reply| Write::Usage(usage, reply)).await
    }

    /// Marks a token as used now.
    pub async fn touch(&self, token_id: &str) -> Result<(), StoreError> {
        let id = token_id.to_owned();
        self.ask(|reply| Write::Touch(id, reply)).await
    }

    async fn ask<T>(&self, job: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Write) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.jobs.send(job(reply)).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> StoreError {
    StoreError::Unavailable("the database writer has stopped".into())
}

fn database(err: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(format!("database: {err}"))
}

/// The writer's loop: take the writes waiting, commit them together, answer them.
fn run(mut connection: Connection, mut queue: mpsc::Receiver<Write>) {
    let mut writes = Vec::with_capacity(MAX_BATCH);
    while queue.blocking_recv_many(&mut writes, MAX_BATCH) > 0 {
        commit(&mut connection, std::mem::take(&mut writes));
    }
}

fn read_facts(
    connection: &Connection,
    workspace_id: &str,
    draft_id: &str,
    destination_id: &str,
    claim: Option<&str>,
) -> Result<Facts, StoreError> {
    let row = connection
        .prepare_cached(FACTS_SQL)
        .and_then(|mut s| {
            s.query_row(
                rusqlite::named_params! { "$1": draft_id, "$2": destination_id, "$3": workspace_id, "$4": claim },
                |row| {
                    Ok(FactsRow {
                        text: row.get("text")?,
                        media: row.get("media")?,
                        content_digest: row.get("content_digest")?,
                        provider: row.get("provider")?,
                        connected: row.get("connected")?,
                        provider_review: row.get("provider_review")?,
                        balance_cents: row.get("balance_cents")?,
                        publishing_mode: row.get("publishing_mode")?,
                        kill_switch: row.get("kill_switch")?,
                        blocked_terms: row.get("blocked_terms")?,
                        approval_status: row.get("approval_status")?,
                        approved_digest: row.get("approved_digest")?,
                        claimed: row.get("claimed")?,
                    })
                },
            )
            .optional()
        })
        .map_err(database)?;
    row.ok_or(StoreError::NotFound)?.into_facts(workspace_id, draft_id, destination_id)
}

fn read_token(connection: &Connection, hash: &str) -> Result<Option<TokenRecord>, StoreError> {
    connection
        .prepare_cached(TOKEN_SQL)
        .and_then(|mut s| {
            s.query_row(rusqlite::named_params! { "$1": hash }, |row| {
                Ok(TokenRecord {
                    id: row.get("id")?,
                    kind: row.get("kind")?,
                    workspace_id: row.get("workspace_id")?,
                    scopes: row.get("scopes")?,
                    hash: row.get("hash")?,
                    revoked_at: row.get("revoked_at")?,
                    rate_limit_per_minute: row.get("rate_limit_per_minute")?,
                })
            })
            .optional()
        })
        .map_err(database)
}

/// Commits `jobs` as one transaction, then answers them. Each job runs in
/// a savepoint, so a job that fails is undone alone and answered with its
/// error; if the commit itself fails, every job is answered with that.
fn commit(connection: &mut Connection, jobs: Vec<Write>) {
    let transaction = match connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate) {
        Ok(transaction) => transaction,
        Err(err) => {
            let message = format!("not recorded: {err}");
            for job in jobs {
                job.fail(&message);
            }
            return;
        }
    };
    let mut answers = Vec::with_capacity(jobs.len());
    for job in jobs {
        answers.push(apply(&transaction, job));
    }
    match transaction.commit() {
        Ok(()) => {
            for answer in answers {
                answer.send();
            }
        }
        Err(err) => {
            tracing::error!(error = %err, "a group commit failed; its requests are refused");
            let message = format!("not recorded: {err}");
            for answer in answers {
                answer.fail(&message);
            }
        }
    }
}

impl Write {
    /// Answers with an error: the transaction could not even begin.
    fn fail(self, message: &str) {
        let err = || StoreError::Unavailable(message.to_owned());
        // A caller that went away (its client disconnected) needs no answer.
        match self {
            Self::Decide(_, reply) => drop(reply.send(Err(err()))),
            Self::Usage(_, reply) | Self::Touch(_, reply) => drop(reply.send(Err(err()))),
        }
    }
}

/// A job carried out inside the open transaction: its answer, sent once that commits.
#[expect(
    clippy::large_enum_variant,
    reason = "built and moved once per decision; a box would only add an allocation"
)]
enum Answered {
    Decided(Result<Recorded, StoreError>, oneshot::Sender<Result<Recorded, StoreError>>),
    Done(Result<(), StoreError>, oneshot::Sender<Result<(), StoreError>>),
}

impl Answered {
    /// Sends the answer: the transaction committed.
    fn send(self) {
        // A caller that went away (its client disconnected) needs no answer.
        match self {
            Self::Decided(answer, reply) => drop(reply.send(answer)),
            Self::Done(answer, reply) => drop(reply.send(answer)),
        }
    }

    /// Answers with an error instead: the commit failed, nothing of the job was recorded.
    fn fail(self, message: &str) {
        let err = || StoreError::Unavailable(message.to_owned());
        match self {
            Self::Decided(_, reply) => drop(reply.send(Err(err()))),
            Self::Done(_, reply) => drop(reply.send(Err(err()))),
        }
    }
}

/// Runs one job in a savepoint: all of it, or (on error) none of it.
fn apply(connection: &Connection, job: Write) -> Answered {
    fn atomically<T>(connection: &Connection, work: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
        connection.execute_batch("SAVEPOINT job").map_err(database)?;
        let done = work();
        let end = if done.is_ok() {
            "RELEASE job"
        } else {
            "ROLLBACK TO job; RELEASE job"
        };
        connection.execute_batch(end).map_err(database)?;
        done
    }
    match job {
        Write::Decide(decision, reply) => Answered::Decided(atomically(connection, || decide(connection, decision)), reply),
        Write::Usage(usage, reply) => {
            let answer = atomically(connection, || {
                let at = now();
                connection
                    .prepare_cached("INSERT INTO usage (key_id, workspace_id, method, route, status, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
                    .and_then(|mut s| {
                        s.execute(params![
                            usage.key_id,
                            usage.workspace_id,
                            usage.method,
                            usage.route,
                            usage.status,
                            at
                        ])
                    })
                    .and_then(|_| connection.prepare_cached("UPDATE tokens SET last_used_at = ?1 WHERE id = ?2"))
                    .and_then(|mut s| s.execute(params![at, usage.key_id]))
                    .map(drop)
                    .map_err(database)
            });
            Answered::Done(answer, reply)
        }
        Write::Touch(id, reply) => {
            let answer = connection
                .prepare_cached("UPDATE tokens SET last_used_at = ?1 WHERE id = ?2")
                .and_then(|mut s| s.execute(params![now(), id]))
                .map(drop)
                .map_err(database);
            Answered::Done(answer, reply)
        }
    }
}

/// Records one decision at the head of its workspace's chain, with its
/// charge and queued publication when it is an allowed publication. The
/// transaction holds SQLite's write lock, so what it reads stays true.
fn decide(connection: &Connection, decision: Decision) -> Result<Recorded, StoreError> {
    let Decision { claim, mut record, price } = decision;
    if let Some((key, _)) = &claim {
        let claimed = connection
            .prepare_cached("SELECT 1 FROM idempotency WHERE workspace_id = ?1 AND key = ?2")
            .and_then(|mut s| s.exists(params![record.workspace_id, key]))
            .map_err(database)?;
        if claimed {
            return Ok(Recorded::AlreadyClaimed);
        }
    }
    let mut publication = None;
    if record.kind == "publication" && record.outcome == "allow" {
        let debited: Option<Cents> = connection
            .prepare_cached(
                "UPDATE workspaces SET balance_cents = balance_cents - ?1 WHERE id = ?2 AND balance_cents >= ?1 RETURNING balance_cents",
            )
            .and_then(|mut s| s.query_row(params![price, record.workspace_id], |row| row.get(0)).optional())
            .map_err(database)?;
        match debited {
            // The gates saw a balance that a concurrent charge has since spent: deny.
            None => {
                record.deny_unaffordable()?;
            }
            Some(balance_after_cents) => {
                let queued = Publication::queued(&record, price);
                connection
                    .prepare_cached(
                        "INSERT INTO ledger (id, workspace_id, kind, amount_cents, balance_after_cents, reference, created_at) VALUES (?1, ?2, 'charge', ?3, ?4, ?5, ?6)",
                    )
                    .and_then(|mut s| {
                        s.execute(params![
                            new_id("led"),
                            record.workspace_id,
                            -price,
                            balance_after_cents,
                            format!("publication:{}", queued.id),
                            record.created_at
                        ])
                    })
                    .map_err(database)?;
                record.charge_cents = price;
                publication = Some(queued);
            }
        }
    }
    record.prev_hash = connection
        .prepare_cached("SELECT hash FROM decisions WHERE workspace_id = ?1 ORDER BY seq DESC LIMIT 1")
        .and_then(|mut s| s.query_row(params![record.workspace_id], |row| row.get(0)).optional())
        .map_err(database)?
        .unwrap_or_else(|| GENESIS_HASH.to_owned());
    record.hash = record.expected_hash();
    record.seq = connection
        .prepare_cached(
            "INSERT INTO decisions (id, workspace_id, kind, key_id, draft_id, destination_id, request_digest, policy, revision, outcome, gates, charge_cents, created_at, prev_hash, hash, request) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16) RETURNING seq",
        )
        .and_then(|mut s| {
            s.query_row(
                params![
                    record.id,
                    record.workspace_id,
                    record.kind,
                    record.key_id,
                    record.draft_id,
                    record.destination_id,
                    record.request_digest,
                    record.policy,
                    record.revision,
                    record.outcome,
                    record.gates,
                    record.charge_cents,
                    record.created_at,
                    record.prev_hash,
                    record.hash,
                    record.request
                ],
                |row| row.get(0),
            )
        })
        .map_err(database)?;
    if let Some(p) = &publication {
        connection
            .prepare_cached(
                "INSERT INTO publications (id, workspace_id, draft_id, destination_id, decision_id, state, charge_cents, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .and_then(|mut s| s.execute(params![p.id, p.workspace_id, p.draft_id, p.destination_id, p.decision_id, p.state, p.charge_cents, p.created_at]))
            .map_err(database)?;
    }
    if let Some((key, fingerprint)) = &claim {
        connection
            .prepare_cached("INSERT INTO idempotency (workspace_id, key, fingerprint, decision_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5)")
            .and_then(|mut s| s.execute(params![record.workspace_id, key, fingerprint, record.id, record.created_at]))
            .map_err(database)?;
    }
    Ok(Recorded::Decided(record, publication))
}
