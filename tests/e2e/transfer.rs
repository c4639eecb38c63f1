//! `events export | events import`: full fidelity between stores, and nothing but whole,
//! untampered histories accepted.

use crate::harness::{assert_success, image, Hoist};
use serde_json::json;

/// A small history across two apps, with a secret.
pub fn write_history(h: &Hoist) {
    h.ok(&["apps", "create", "api"]);
    h.ok(&["apps", "create", "web", "--envs", "dev,staging,production"]);
    h.deploy("api", "staging", &image("api", 'e'));
    h.deploy("web", "dev", &image("web", 'f'));
    h.ok(&[
        "config",
        "set",
        "api",
        "--env",
        "staging",
        "--secret",
        "TOKEN=t0ps3cret",
    ]);
    h.ok(&["config", "set", "api", "--env", "staging", "LOG=debug"]);
    h.ok(&["promote", "api", "--from", "staging"]);
    h.ok(&["promote", "web", "--from", "dev"]);
    h.ok(&["rollback", "api", "--env", "staging"]);
    h.ok(&["lock", "api", "--env", "production", "--reason", "audit"]);
}

pub fn export(h: &Hoist) -> Vec<u8> {
    let output = h.run(&["events", "export"]);
    assert_success(&["events", "export"], &output);
    output.stdout
}

/// Everything a user can ask of an app's history, for comparing two stores.
pub fn answers(h: &Hoist) -> Vec<serde_json::Value> {
    let mut answers = vec![h.json(&["apps", "list"])];
    for (app, envs) in [
        ("api", &["staging", "production"][..]),
        ("web", &["dev", "staging", "production"]),
    ] {
        answers.push(h.json(&["status", app]));
        for env in envs {
            answers.push(h.json(&["releases", app, "--env", env]));
            answers.push(h.json(&["config", "get", app, "--env", env, "--reveal"]));
        }
    }
    answers
}

pub fn export_import_round_trip(from: &Hoist, to: &Hoist) {
    write_history(from);
    import_into(from, to);
}

/// Moves `from`'s whole history into the empty `to`, and checks every answer is the same.
pub fn import_into(from: &Hoist, to: &Hoist) {
    let exported = export(from);
    assert!(
        !String::from_utf8_lossy(&exported).contains("t0ps3cret"),
        "export keeps secrets sealed"
    );
    // The target shares the source's secret key, as a migrated installation would.
    std::fs::copy(
        from.dir.path().join("secret.key"),
        to.dir.path().join("secret.key"),
    )
    .expect("copy key");
    let output = to.run_with_input(&["events", "import", "--json"], &exported);
    assert_success(&["events", "import"], &output);
    let summary: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("import summary");
    assert_eq!(summary["apps"], json!(2));
    assert_eq!(
        summary["events"],
        json!(exported
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .count())
    );
    assert_eq!(answers(to), answers(from));
    assert_eq!(to.json(&["audit", "verify"])["ok"], json!(true));
    assert_eq!(export(to), exported, "a second export is byte-identical");
    // Importing the same apps again is refused whole.
    to.fails_with_input(
        &["events", "import"],
        &exported,
        1,
        &["app api already exists"],
    );
}

pub fn tampered_imports_are_refused(from: &Hoist, to: &Hoist) {
    write_history(from);
    let exported = String::from_utf8(export(from)).expect("utf-8 export");
    let lines: Vec<&str> = exported.lines().collect();

    let mut altered = lines.clone();
    let forged = altered[3].replace("ana@example.com", "eve@example.com");
    assert_ne!(forged, altered[3]);
    altered[3] = &forged;
    to.fails_with_input(
        &["events", "import"],
        altered.join("\n").as_bytes(),
        1,
        &["line 4", "altered"],
    );

    let mut missing = lines.clone();
    missing.remove(2);
    to.fails_with_input(
        &["events", "import"],
        missing.join("\n").as_bytes(),
        1,
        &["hash chain", "broken"],
    );

    let mut swapped = lines.clone();
    swapped.swap(2, 4);
    to.fails_with_input(
        &["events", "import"],
        swapped.join("\n").as_bytes(),
        1,
        &["hash chain", "broken"],
    );

    let mut garbage = lines.clone();
    garbage.push("{\"not\": \"an event\"}");
    to.fails_with_input(
        &["events", "import"],
        garbage.join("\n").as_bytes(),
        1,
        &[
            &format!("line {}", lines.len() + 1),
            "not an exported event",
        ],
    );
    assert_eq!(
        to.event_count(),
        0,
        "a refused import leaves the store empty"
    );
}

/// The export's lines as JSON values, for editing.
pub fn lines_of(exported: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(exported)
        .lines()
        .map(|l| serde_json::from_str(l).expect("an exported line is JSON"))
        .collect()
}

pub fn joined(lines: &[serde_json::Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in lines {
        serde_json::to_writer(&mut out, line).expect("JSON");
        out.push(b'\n');
    }
    out
}

/// Recomputes every hash and link as a forger would, so that only the domain rules can tell an
/// impossible history from a real one.
pub fn rechain(lines: &mut [serde_json::Value]) {
    use hoist_engine::{codec::encode_envelope, Envelope, EventHash};
    let mut heads = std::collections::HashMap::new();
    for line in lines {
        let app = line["app"].as_str().expect("app").to_string();
        line["prev_hash"] = heads.get(&app).cloned().unwrap_or(serde_json::Value::Null);
        let envelope: Envelope = serde_json::from_value(line.clone()).expect("an envelope");
        let hash = json!(EventHash::of(&encode_envelope(&envelope)).to_hex());
        line["hash"] = hash.clone();
        heads.insert(app, hash);
    }
}

/// The index of the first line whose event matches `pred`.
fn find(lines: &[serde_json::Value], pred: impl Fn(&serde_json::Value) -> bool) -> usize {
    lines
        .iter()
        .position(|l| pred(&l["event"]))
        .expect("the history has such an event")
}

pub fn repeated_event_ids_are_refused_with_their_line(from: &Hoist, to: &Hoist) {
    write_history(from);
    let lines = lines_of(&export(from));

    // A line given twice: the second is named, with the first.
    let mut twice = lines.clone();
    twice.push(lines[4].clone());
    to.fails_with_input(
        &["events", "import"],
        &joined(&twice),
        1,
        &[
            &format!("stdin line {}", lines.len() + 1),
            "is repeated (first on line 5)",
        ],
    );

    // An id of app web given to an event of app api, with every hash recomputed: the sled store
    // used to keep one of the two and call the import intact.
    let mut reused = lines.clone();
    let web = find(&lines, |e| {
        e["type"] == "app_created" && e["envs"][0] == "dev"
    });
    let last = reused.len() - 1;
    assert_eq!(reused[last]["app"], "api");
    reused[last]["id"] = lines[web]["id"].clone();
    rechain(&mut reused);
    to.fails_with_input(
        &["events", "import"],
        &joined(&reused),
        1,
        &[
            &format!("stdin line {}", lines.len()),
            &format!("(first on line {})", web + 1),
        ],
    );
    assert_eq!(
        to.event_count(),
        0,
        "a refused import leaves the store empty"
    );
}

pub fn impossible_histories_are_refused(from: &Hoist, to: &Hoist) {
    write_history(from);
    let exported = export(from);
    let lines = lines_of(&exported);
    let release = |kind: &'static str| {
        move |e: &serde_json::Value| e["type"] == "release_created" && e["release"]["kind"] == kind
    };
    let rollback = find(&lines, release("rollback"));
    let deploy = find(&lines, release("deploy"));
    let web_deploy = find(&lines, |e| release("deploy")(e) && e["env"] == "dev");
    let lock = find(&lines, |e| e["type"] == "env_locked");
    type Edit = Box<dyn Fn(&mut serde_json::Value)>;
    let cases: Vec<(usize, Edit, &[&str])> = vec![
        (
            rollback,
            Box::new(|e| e["release"]["rollback_to"] = json!(9)),
            &["rollback event", "has no release v9"],
        ),
        (
            deploy,
            Box::new(|e| e["release"]["version"] = json!(5)),
            &["release v5 is out of order: the next release is v1"],
        ),
        (
            web_deploy,
            Box::new(|e| e["env"] = json!("qa")),
            &["env qa is not in the pipeline of app web"],
        ),
        (
            web_deploy,
            Box::new(|e| *e = json!({"type": "app_created", "envs": ["dev"]})),
            &["app web already exists"],
        ),
        (
            lock,
            Box::new(|e| *e = json!({"type": "env_unlocked", "env": "production"})),
            &["api/production is not locked"],
        ),
    ];
    for (at, edit, needles) in cases {
        let mut forged = lines.clone();
        edit(&mut forged[at]["event"]);
        rechain(&mut forged);
        let mut needles = needles.to_vec();
        let line = format!("stdin line {}:", at + 1);
        needles.push(&line);
        to.fails_with_input(&["events", "import"], &joined(&forged), 1, &needles);
    }
    // Events before the app's creation.
    let mut early = lines.clone();
    early.swap(0, 2);
    rechain(&mut early);
    to.fails_with_input(
        &["events", "import"],
        &joined(&early),
        1,
        &["stdin line 1:", "before its app_created"],
    );
    assert_eq!(
        to.event_count(),
        0,
        "a refused import leaves the store empty"
    );
    let output = to.run_with_input(&["events", "import"], &exported);
    assert_success(&["events", "import"], &output);
}

#[allow(dead_code)] // its bench helper is the benches'
#[path = "../../benches/support/history.rs"]
mod history;

/// `commits` commits of app `bulk` (`hoist bench`'s workload), written straight into the
/// embedded store at `dir` (the CLI would take a process per commit), exported by the CLI.
pub fn large_export(commits: u64) -> Vec<u8> {
    use hoist_stores::file::FileStore;
    let from = Hoist::sled();
    let store = FileStore::open(from.data_dir(), std::time::Duration::from_secs(30))
        .expect("a fresh store opens");
    let mut writer = history::Writer::new("bulk".parse().unwrap(), 0);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            for _ in 0..commits {
                writer.commit(&store).await;
            }
        });
    drop(store);
    export(&from)
}

/// A fresh, empty target, and whatever must live as long as it (a NATS server).
pub type Fresh<'a> = &'a dyn Fn() -> (Box<dyn std::any::Any>, Hoist);

/// The crash torture's import part: an import SIGKILLed at `kills` moments spread over a whole
/// import's run (jittered, and some after its end) leaves the whole history or nothing, a store
/// that passes `admin check`, and (when nothing) a store that takes the same import again.
pub fn killed_import_leaves_all_or_nothing(fresh: Fresh, commits: u64, kills: u32) {
    use std::time::{Duration, Instant};
    let exported = large_export(commits);
    let events = exported
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .count();

    // How long a whole import takes here: the kills land within it.
    let (_keep, scratch) = fresh();
    let started = Instant::now();
    let output = scratch.run_with_input(&["events", "import"], &exported);
    let whole = started.elapsed();
    assert_success(&["events", "import"], &output);
    assert_eq!(scratch.event_count(), events);

    let mut jitter = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let (mut none, mut all) = (0, 0);
    for i in 0..kills {
        jitter = jitter.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let fraction = 1.1 * (f64::from(i) + f64::from(jitter % 1000) / 1000.0) / f64::from(kills);
        let delay = whole.mul_f64(fraction);
        let (_keep, to) = fresh();
        let mut child = to
            .command(&["events", "import"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("hoist runs");
        let started = Instant::now();
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().expect("stdin");
            // A kill during the write is a kill mid-read, which is fine too.
            let _ = stdin.write_all(&exported);
        }
        crate::harness::wait_for("the kill moment", Duration::from_secs(60), || {
            let exited = child.try_wait().expect("child status").is_some();
            (exited || started.elapsed() >= delay).then_some(())
        });
        let _ = child.kill();
        child.wait().expect("the import ends");

        let present = to.event_count();
        assert!(
            present == 0 || present == events,
            "killed after {delay:?}: {present} of {events} events stored"
        );
        if present == 0 {
            none += 1;
            let output = to.run_with_input(&["events", "import"], &exported);
            assert_success(&["events", "import"], &output);
        } else {
            all += 1;
        }
        assert_eq!(to.json(&["admin", "check"])["ok"], json!(true));
        assert_eq!(
            export(&to),
            exported,
            "killed after {delay:?}: the import is whole"
        );
    }
    eprintln!("killed imports of {events} events: {none} left nothing, {all} were whole (an import takes {whole:?})");
}

/// NATS: an import larger than one atomic batch is refused with a line that says what to do.
pub fn an_import_over_the_batch_limit_is_refused_whole(to: &Hoist, commits: u64) {
    to.fails_with_input(
        &["events", "import"],
        &large_export(commits),
        1,
        &[
            "a batch of 1001 commits",
            "max_batch_size",
            "nothing was appended",
        ],
    );
}
