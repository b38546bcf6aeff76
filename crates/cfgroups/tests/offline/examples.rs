//! The deployment examples stay true to the program: the Kubernetes manifests reference each
//! other and the daemon's real flags, paths and port; the GitOps workflow runs commands and
//! flags that exist; the Prometheus alerts use metric names the daemon exports.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use clap::Parser;
use serde::Deserialize;
use serde_json::Value;

use cfgroups::cli::{Cli, Command};
use testkit::repo_root as root;

/// Every YAML document of `path`, as JSON values.
fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .filter(|doc| !doc.is_null())
        .collect()
}

fn str_of<'a>(value: &'a Value, what: &str) -> &'a str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {value}"))
}

/// Parses a cfgroups command line as the binary would.
fn parse(args: &[String]) -> Cli {
    let argv = std::iter::once("cfgroups".to_owned()).chain(args.iter().cloned());
    Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("cfgroups {}:\n{e}", args.join(" ")))
}

// ---------------------------------------------------------------------------------------
// Kubernetes

const KUBERNETES: &str = "examples/kubernetes";

/// Every manifest of the Kubernetes example by kind and name.
fn kubernetes_objects() -> BTreeMap<(String, String), Value> {
    let dir = root().join(KUBERNETES);
    let mut objects = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        for doc in documents(&path) {
            let kind = str_of(&doc["kind"], "kind").to_owned();
            let name = doc["metadata"]["name"].as_str().unwrap_or("").to_owned();
            let previous = objects.insert((kind.clone(), name.clone()), doc);
            assert!(previous.is_none(), "{kind} {name} is defined twice");
        }
    }
    objects
}

fn object<'a>(objects: &'a BTreeMap<(String, String), Value>, kind: &str, name: &str) -> &'a Value {
    objects
        .get(&(kind.to_owned(), name.to_owned()))
        .unwrap_or_else(|| panic!("no {kind} named {name:?} in {KUBERNETES}"))
}

#[test]
fn the_kustomization_lists_every_manifest() {
    let dir = root().join(KUBERNETES);
    let kustomization = &documents(&dir.join("kustomization.yaml"))[0];
    let listed: BTreeSet<String> = kustomization["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| str_of(r, "resource").to_owned())
        .collect();
    let present: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".yaml") && name != "kustomization.yaml")
        .collect();
    assert_eq!(listed, present);
    let namespace = str_of(&kustomization["namespace"], "namespace");
    object(&kubernetes_objects(), "Namespace", namespace);
}

#[test]
fn the_kubernetes_manifests_fit_together_and_fit_the_daemon() {
    let objects = kubernetes_objects();
    let workload = object(&objects, "StatefulSet", "cfgroups");
    let spec = &workload["spec"];
    let template = &spec["template"];
    let labels = template["metadata"]["labels"].as_object().unwrap();
    for (key, value) in spec["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(
            labels.get(key),
            Some(value),
            "selector {key} does not match the pod"
        );
    }
    let pod = &template["spec"];
    let containers = pod["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1);
    let container = &containers[0];

    // The container's arguments are a valid `cfgroups run`.
    let args: Vec<String> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| str_of(a, "arg").to_owned())
        .collect();
    let Command::Run(run) = parse(&args).command else {
        panic!("the container does not run `cfgroups run`: {args:?}");
    };
    assert!(
        run.listen.ip().is_unspecified(),
        "probes and scrapes come from outside the pod: --listen must not be loopback"
    );
    let port = run.listen.port();

    // The port, the probes and the scrape annotations agree with --listen.
    let ports = container["ports"].as_array().unwrap();
    let named_port = ports
        .iter()
        .find(|p| p["containerPort"] == port)
        .unwrap_or_else(|| panic!("no containerPort {port}"));
    let resolve = |probe_port: &Value| -> u64 {
        match probe_port {
            Value::Number(n) => n.as_u64().unwrap(),
            Value::String(name) => ports
                .iter()
                .find(|p| p["name"] == name.as_str())
                .unwrap_or_else(|| panic!("no port named {name}"))["containerPort"]
                .as_u64()
                .unwrap(),
            other => panic!("bad probe port {other}"),
        }
    };
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["path"], path, "{probe}");
        assert_eq!(resolve(&get["port"]), u64::from(port), "{probe}");
    }
    assert!(named_port["name"].is_string());
    let annotations = &template["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(annotations["prometheus.io/port"], port.to_string());
    assert_eq!(annotations["prometheus.io/path"], "/metrics");

    // Hardening: non-root, no privilege escalation, read-only root, no capabilities.
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["capabilities"]["drop"], serde_json::json!(["ALL"]));
    for kind in ["requests", "limits"] {
        assert!(
            container["resources"][kind]["memory"].is_string(),
            "no memory {kind}"
        );
    }

    // Volumes: the config directory is the ConfigMap, the state directory survives the pod.
    let volumes: BTreeMap<&str, &Value> = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (str_of(&v["name"], "volume name"), v))
        .collect();
    let mount_of = |path: &Path| -> &Value {
        let mount = container["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| Path::new(str_of(&m["mountPath"], "mountPath")) == path)
            .unwrap_or_else(|| panic!("nothing is mounted at {}", path.display()));
        volumes[str_of(&mount["name"], "mount name")]
    };
    let config_volume = mount_of(&run.config.config);
    let config_map = object(
        &objects,
        "ConfigMap",
        str_of(&config_volume["configMap"]["name"], "configMap name"),
    );
    // The state directory is each replica's own volume, from the claim template: the
    // journal must outlive the pod, and every replica keeps its own.
    let state_dir = run.state.state_dir.clone().expect("--state-dir is set");
    let state_mount = container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| Path::new(str_of(&m["mountPath"], "mountPath")) == state_dir)
        .unwrap_or_else(|| panic!("nothing is mounted at {}", state_dir.display()));
    let claim = str_of(&state_mount["name"], "mount name");
    assert!(
        !volumes.contains_key(claim),
        "the state directory must come from volumeClaimTemplates, one volume per replica"
    );
    assert!(
        spec["volumeClaimTemplates"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["metadata"]["name"] == claim),
        "no volumeClaimTemplate named {claim}"
    );

    // The ConfigMap holds a valid desired state, one file per key.
    let data = config_map["data"].as_object().unwrap();
    assert!(!data.is_empty());
    for (key, text) in data {
        assert!(key.ends_with(".yaml"), "{key} would not be read");
        let text = str_of(text, key);
        if let Err(errors) = cfgroups::config::parse(text, Path::new(key)) {
            panic!("ConfigMap data.{key} is not a valid desired state:\n{errors}");
        }
    }

    // The token comes from the Secret, under a key it has.
    let env = container["env"].as_array().unwrap();
    let token = env
        .iter()
        .find(|e| e["name"] == "CLOUDFLARE_API_TOKEN")
        .expect("CLOUDFLARE_API_TOKEN is set");
    let reference = &token["valueFrom"]["secretKeyRef"];
    let secret = object(
        &objects,
        "Secret",
        str_of(&reference["name"], "secret name"),
    );
    let key = str_of(&reference["key"], "secret key");
    assert!(
        secret["stringData"].get(key).is_some() || secret["data"].get(key).is_some(),
        "the Secret has no key {key}"
    );
}

/// The container of the StatefulSet, and its `cfgroups run` arguments.
fn daemon_container(
    objects: &BTreeMap<(String, String), Value>,
) -> (Value, cfgroups::cli::RunArgs) {
    let workload = object(objects, "StatefulSet", "cfgroups");
    let container = workload["spec"]["template"]["spec"]["containers"][0].clone();
    let args: Vec<String> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| str_of(a, "arg").to_owned())
        .collect();
    let Command::Run(run) = parse(&args).command else {
        panic!("the container does not run `cfgroups run`: {args:?}");
    };
    (container, *run)
}

#[test]
fn the_kubernetes_example_runs_two_replicas_with_one_writer() {
    use cfgroups::cli::ElectionBackend;
    use cfgroups::daemon::election::kubernetes::VERBS;
    use clap::CommandFactory;

    let objects = kubernetes_objects();
    let workload = object(&objects, "StatefulSet", "cfgroups");
    let spec = &workload["spec"];
    assert_eq!(
        spec["replicas"], 2,
        "two replicas: one leads, one stands by"
    );
    let pod = &spec["template"]["spec"];

    // The arguments parse and ask for a Lease.
    let (container, run) = daemon_container(&objects);
    assert_eq!(run.election.leader_election, ElectionBackend::Kubernetes);
    let lock = run.election.lock_name.clone();

    // The identity and the namespace come from the downward API, under the names the
    // program reads them from.
    let run_command = Cli::command()
        .find_subcommand("run")
        .expect("a run command")
        .clone();
    let env_of = |flag: &str| -> String {
        let arg = run_command
            .get_arguments()
            .find(|a| a.get_long() == Some(flag))
            .unwrap_or_else(|| panic!("no --{flag}"));
        arg.get_env()
            .unwrap_or_else(|| panic!("--{flag} has no environment fallback"))
            .to_string_lossy()
            .into_owned()
    };
    let env = container["env"].as_array().unwrap();
    for (flag, field) in [
        ("identity", "metadata.name"),
        ("lease-namespace", "metadata.namespace"),
    ] {
        let name = env_of(flag);
        let var = env
            .iter()
            .find(|e| e["name"] == name.as_str())
            .unwrap_or_else(|| panic!("{name} (for --{flag}) is not set"));
        assert_eq!(var["valueFrom"]["fieldRef"]["fieldPath"], field, "{name}");
    }

    // The pod runs as the service account that the Role is bound to, with its token.
    let account = str_of(&pod["serviceAccountName"], "serviceAccountName");
    object(&objects, "ServiceAccount", account);
    assert_ne!(
        pod["automountServiceAccountToken"], false,
        "the Lease needs the token"
    );
    let binding = objects
        .iter()
        .filter(|((kind, _), _)| kind == "RoleBinding")
        .map(|(_, b)| b)
        .find(|b| {
            b["subjects"].as_array().is_some_and(|s| {
                s.iter()
                    .any(|s| s["kind"] == "ServiceAccount" && s["name"] == account)
            })
        })
        .expect("a RoleBinding for the service account");
    assert_eq!(binding["roleRef"]["kind"], "Role");
    let role = object(
        &objects,
        "Role",
        str_of(&binding["roleRef"]["name"], "role name"),
    );

    // The Role grants every verb the elector uses on this Lease, plus what the example
    // promises (patch, watch); rules naming resources name the lock.
    let mut granted = BTreeSet::new();
    for rule in role["rules"].as_array().unwrap() {
        let on_leases = rule["apiGroups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g == "coordination.k8s.io")
            && rule["resources"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r == "leases");
        if !on_leases {
            continue;
        }
        if let Some(names) = rule["resourceNames"].as_array() {
            assert!(
                names.iter().any(|n| n == lock.as_str()),
                "the rule names {names:?}, not --lock-name {lock}"
            );
        }
        for verb in rule["verbs"].as_array().unwrap() {
            granted.insert(str_of(verb, "verb").to_owned());
        }
    }
    for verb in VERBS.iter().chain(&["patch"]) {
        assert!(
            granted.contains(*verb),
            "the Role does not grant {verb} on leases: {granted:?}"
        );
    }

    // Voluntary disruptions leave one replica running.
    let budget = objects
        .iter()
        .find(|((kind, _), _)| kind == "PodDisruptionBudget")
        .map(|(_, b)| b)
        .expect("a PodDisruptionBudget");
    assert_eq!(budget["spec"]["minAvailable"], 1);
    assert_eq!(budget["spec"]["selector"], spec["selector"]);

    // SIGTERM leaves time for the deletion in flight and the release.
    assert!(pod["terminationGracePeriodSeconds"].as_u64().unwrap_or(30) >= 30);
    // The governing Service exists.
    object(
        &objects,
        "Service",
        str_of(&spec["serviceName"], "serviceName"),
    );
}

// ---------------------------------------------------------------------------------------
// GitOps

const WORKFLOW: &str = "examples/gitops/workflow.yaml";

/// One `cfgroups` invocation in a workflow step: its arguments and where stdout goes.
#[derive(Debug)]
struct Invocation {
    job: String,
    args: Vec<String>,
    stdout_to: Option<String>,
}

/// The `cfgroups` invocations of a shell script: continuation lines joined, commands split
/// on `&&`, `||`, `;` and `|`, `${{ }}` expressions replaced by a placeholder.
fn invocations(job: &str, script: &str) -> Vec<Invocation> {
    let mut text = script.replace("\\\n", " ");
    while let Some(start) = text.find("${{") {
        let end = text[start..]
            .find("}}")
            .map_or(text.len(), |e| start + e + 2);
        text.replace_range(start..end, "EXPR");
    }
    let mut found = Vec::new();
    for line in text.lines() {
        let mut segments = vec![line.to_owned()];
        for separator in ["&&", "||", ";", "|"] {
            segments = segments
                .iter()
                .flat_map(|s| s.split(separator).map(str::to_owned).collect::<Vec<_>>())
                .collect();
        }
        for segment in segments {
            let words = shlex::split(&segment).unwrap_or_default();
            let Some(start) = words.iter().position(|w| !w.contains('=')) else {
                continue;
            };
            if words[start] != "cfgroups" {
                continue;
            }
            let mut args = Vec::new();
            let mut stdout_to = None;
            let mut rest = words[start + 1..].iter();
            while let Some(word) = rest.next() {
                if word == ">" || word == ">>" {
                    stdout_to = rest.next().cloned();
                } else if let Some(file) = word.strip_prefix('>') {
                    stdout_to = Some(file.to_owned());
                } else if word.starts_with("2>") {
                    continue;
                } else {
                    args.push(word.clone());
                }
            }
            found.push(Invocation {
                job: job.to_owned(),
                args,
                stdout_to,
            });
        }
    }
    found
}

fn flag_value<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

#[test]
fn the_gitops_workflow_runs_real_commands_plans_on_pull_requests_and_applies_on_merge() {
    let workflow = &documents(&root().join(WORKFLOW))[0];
    let triggers = workflow
        .get("on")
        .or_else(|| workflow.get("true"))
        .expect("the workflow has triggers");
    assert!(triggers.get("pull_request").is_some());
    assert_eq!(triggers["push"]["branches"], serde_json::json!(["main"]));
    assert!(
        triggers.get("workflow_dispatch").is_some(),
        "no manual re-plan and apply"
    );

    let mut all = Vec::new();
    let mut step_texts: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (job_name, job) in workflow["jobs"].as_object().unwrap() {
        let condition = job["if"].as_str().unwrap_or("");
        for step in job["steps"].as_array().unwrap() {
            step_texts
                .entry(job_name.clone())
                .or_default()
                .push(serde_json::to_string(step).unwrap());
            if let Some(script) = step["run"].as_str() {
                all.extend(invocations(job_name, script));
            }
        }
        // Each job runs on exactly one kind of event.
        assert!(
            condition.contains("github.event_name == 'pull_request'")
                || condition.contains("github.event_name == 'push'")
                || condition.contains("github.event_name == 'workflow_dispatch'"),
            "job {job_name} has no event condition"
        );
    }
    assert!(all.len() >= 5, "{all:?}");
    // Every invocation parses with the real command line.
    let mut configs = BTreeSet::new();
    for invocation in &all {
        parse(&invocation.args);
        if let Some(config) = flag_value(&invocation.args, "--config") {
            configs.insert(config.to_owned());
        }
    }
    assert_eq!(
        configs.len(),
        1,
        "every command reads the same files: {configs:?}"
    );
    let config_dir = root()
        .join("examples/gitops")
        .join(configs.iter().next().unwrap());
    cfgroups::config::load(&config_dir).unwrap_or_else(|e| panic!("{e}"));

    let jobs = workflow["jobs"].as_object().unwrap();
    let jobs_of = |event: &str| -> Vec<String> {
        jobs.iter()
            .filter(|(_, job)| job["if"].as_str().unwrap_or("").contains(event))
            .map(|(name, _)| name.clone())
            .collect()
    };
    let one_job_of = |event: &str| -> String {
        let found = jobs_of(event);
        assert_eq!(found.len(), 1, "jobs for {event}: {found:?}");
        found[0].clone()
    };
    let pr_job = one_job_of("'pull_request'");
    let merge_job = one_job_of("'push'");
    let find = |job: &str, subcommand: &str| -> &Invocation {
        all.iter()
            .find(|i| i.job == job && i.args.first().map(String::as_str) == Some(subcommand))
            .unwrap_or_else(|| panic!("job {job} does not run `cfgroups {subcommand}`"))
    };

    // Pull request: validate, plan as Markdown, post it, keep the plan file.
    find(&pr_job, "validate");
    let plan = find(&pr_job, "plan");
    assert_eq!(flag_value(&plan.args, "--output"), Some("markdown"));
    let saved = flag_value(&plan.args, "--out")
        .expect("plan --out")
        .to_owned();
    assert!(!plan.args.contains(&"--detailed-exitcode".to_owned()));
    let markdown = plan
        .stdout_to
        .clone()
        .expect("the Markdown report is kept in a file");
    let pr_steps = &step_texts[&pr_job];
    assert!(
        pr_steps
            .iter()
            .any(|s| s.contains("gh pr comment") && s.contains(&markdown)),
        "no step posts {markdown}"
    );
    let upload = pr_steps
        .iter()
        .find(|s| s.contains("actions/upload-artifact") && s.contains(&saved))
        .unwrap_or_else(|| panic!("no step keeps {saved}"));
    let upload: Value = serde_json::from_str(upload).unwrap();
    let artifact = str_of(&upload["with"]["name"], "artifact name").to_owned();

    // Merge: fetch that artifact, then apply exactly it, without a prompt.
    let merge_steps = &step_texts[&merge_job];
    let download = merge_steps
        .iter()
        .position(|s| s.contains(&artifact))
        .unwrap_or_else(|| panic!("the merge job never fetches {artifact}"));
    let apply_step = merge_steps
        .iter()
        .position(|s| s.contains("cfgroups apply"))
        .unwrap();
    assert!(
        download < apply_step,
        "the plan is fetched after apply runs"
    );
    let apply = find(&merge_job, "apply");
    assert_eq!(flag_value(&apply.args, "--plan"), Some(saved.as_str()));
    assert!(apply.args.contains(&"--yes".to_owned()));
    assert!(!apply.args.contains(&"--force".to_owned()));

    // By hand on main: re-plan what main says now, then apply exactly that plan, after
    // the apply's environment approves it.
    let dispatched = jobs_of("'workflow_dispatch'");
    assert!(!dispatched.is_empty(), "no job runs on workflow_dispatch");
    for job in &dispatched {
        assert!(
            jobs[job]["if"]
                .as_str()
                .unwrap()
                .contains("github.ref == 'refs/heads/main'"),
            "{job} may run on another branch"
        );
    }
    let replan = dispatched
        .iter()
        .find(|job| all.iter().any(|i| i.job == **job && i.args[0] == "plan"))
        .expect("a dispatched job plans");
    let reapply = dispatched
        .iter()
        .find(|job| all.iter().any(|i| i.job == **job && i.args[0] == "apply"))
        .expect("a dispatched job applies");
    let replanned = find(replan, "plan");
    let replanned_out = flag_value(&replanned.args, "--out").expect("the re-plan is saved");
    let reapplied = find(reapply, "apply");
    assert_eq!(flag_value(&reapplied.args, "--plan"), Some(replanned_out));
    assert!(!reapplied.args.contains(&"--force".to_owned()));
    if replan != reapply {
        assert!(
            jobs[reapply]["needs"].to_string().contains(replan.as_str()),
            "{reapply} does not wait for {replan}"
        );
    }

    // Concurrency: plans of one pull request supersede each other and nothing else; every
    // apply waits in one queue and is never cancelled (a workflow-level group would let a
    // pull request's plan cancel a merge's apply).
    assert!(
        workflow.get("concurrency").is_none(),
        "a workflow-level concurrency group puts plans and applies in one queue"
    );
    let plan_group = &jobs[&pr_job]["concurrency"];
    assert!(
        str_of(&plan_group["group"], "plan group").contains("github.event.pull_request.number"),
        "{plan_group}"
    );
    let applying = [merge_job.clone(), reapply.clone()];
    let mut apply_groups = BTreeSet::new();
    for job in &applying {
        let group = &jobs[job]["concurrency"];
        assert_eq!(group["cancel-in-progress"], false, "{job}: {group}");
        assert_eq!(group["queue"], "max", "{job} does not queue: {group}");
        apply_groups.insert(str_of(&group["group"], "apply group").to_owned());
        assert!(
            jobs[job]["environment"].is_string(),
            "{job} needs no approval"
        );
    }
    assert_eq!(
        apply_groups.len(),
        1,
        "applies in several queues: {apply_groups:?}"
    );
    assert_ne!(
        plan_group["group"].as_str(),
        apply_groups.iter().next().map(String::as_str)
    );

    // A prebuilt binary in every job that runs cfgroups, its checksum checked; never a
    // build from source.
    for (job, steps) in &step_texts {
        assert!(
            steps
                .iter()
                .all(|s| !s.contains("cargo install") && !s.contains("cargo build")),
            "{job} builds cfgroups"
        );
        if all.iter().any(|i| &i.job == job) {
            let install = steps
                .iter()
                .find(|s| s.contains("gh release download"))
                .unwrap_or_else(|| panic!("{job} does not install a release binary"));
            assert!(install.contains("sha256sum --check"), "{job}: {install}");
        }
    }

    // The journal (backups with members' e-mails) stays in one lasting place on a
    // self-hosted runner: never under the runner's temporary directory, never in an
    // artifact.
    let mut state_dirs = BTreeSet::new();
    for job in &applying {
        let runs_on = jobs[job]["runs-on"].to_string();
        assert!(runs_on.contains("self-hosted"), "{job} runs on {runs_on}");
        let apply = find(job, "apply");
        let state_dir = flag_value(&apply.args, "--state-dir")
            .unwrap_or_else(|| panic!("{job}: apply without --state-dir"));
        assert!(
            !state_dir.contains("RUNNER_TEMP") && !state_dir.contains("runner.temp"),
            "{job}: the journal in a temporary directory"
        );
        state_dirs.insert(state_dir.to_owned());
    }
    assert_eq!(state_dirs.len(), 1, "two journals: {state_dirs:?}");
    let workflow_text = std::fs::read_to_string(root().join(WORKFLOW)).unwrap();
    assert!(
        workflow_text.contains("vars.CFGROUPS_STATE_DIR"),
        "the journal's directory is not the documented variable"
    );
    for steps in step_texts.values() {
        for step in steps.iter().filter(|s| s.contains("upload-artifact")) {
            assert!(
                !step.contains("journal") && !step.contains("STATE_DIR"),
                "the journal is uploaded as an artifact: {step}"
            );
        }
    }
}

#[test]
fn workflow_parsing_finds_invocations_and_redirections() {
    let found = invocations(
        "j",
        "status=0\nRUST_LOG=info cfgroups plan --config \"a b\" > plan.md || status=$?\necho x | cfgroups \\\n  validate --config ${{ vars.X }}\n",
    );
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(found[0].args, ["plan", "--config", "a b"]);
    assert_eq!(found[0].stdout_to.as_deref(), Some("plan.md"));
    assert_eq!(found[1].args, ["validate", "--config", "EXPR"]);
}

// ---------------------------------------------------------------------------------------
// Prometheus

/// Every series name the daemon can export, and the label names each carries.
fn exported_series() -> BTreeMap<String, BTreeSet<String>> {
    use cfgroups::daemon::{Metrics, ReconcileResult};
    use cfgroups::model::DeletionOutcome;
    use cfgroups::plan::Summary;
    let metrics = Metrics::new("x");
    // Touch every labelled family so its series (and label names) appear.
    let account = testkit::account(0);
    metrics.record_reconcile(ReconcileResult::Success, std::time::Duration::from_secs(1));
    metrics.set_drift(&account, &Summary::default());
    metrics.record_deletion(&account, &DeletionOutcome::Deleted);
    metrics.record_api_request("GET", 200);
    metrics.record_account_success(&account, std::time::SystemTime::now());
    metrics.track_account(&account);
    metrics.record_account_result(&account, cfgroups::daemon::AccountResult::Success);
    let text = metrics.encode();

    let mut series: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let labels = series.entry(line[..name_end].to_owned()).or_default();
        if line[name_end..].starts_with('{') {
            let inside = &line[name_end + 1..line.find('}').unwrap()];
            for pair in inside.split(',') {
                if let Some((label, _)) = pair.split_once('=') {
                    labels.insert(label.to_owned());
                }
            }
        }
    }
    // Every family declared by a TYPE line has its series: counters `_total`, histograms
    // `_bucket`, `_sum`, `_count`, gauges their own name.
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let (family, kind) = rest.split_once(' ').unwrap();
        let names: Vec<String> = match kind {
            "counter" => vec![format!("{family}_total")],
            "histogram" => ["_bucket", "_sum", "_count"]
                .iter()
                .map(|s| format!("{family}{s}"))
                .collect(),
            _ => vec![family.to_owned()],
        };
        for name in names {
            assert!(series.contains_key(&name), "{name} has no series:\n{text}");
        }
    }
    series
}

/// Each `cfgroups_*` name in a PromQL expression, with the label names of its selector.
fn selectors(expr: &str) -> Vec<(String, BTreeSet<String>)> {
    let mut found = Vec::new();
    let mut rest = expr;
    while let Some(start) = rest.find("cfgroups_") {
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = tail[..end].to_owned();
        let mut labels = BTreeSet::new();
        if tail[end..].starts_with('{') {
            let close = tail[end..].find('}').unwrap() + end;
            for matcher in tail[end + 1..close].split(',') {
                let label: String = matcher
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !label.is_empty() {
                    labels.insert(label);
                }
            }
        }
        found.push((name, labels));
        rest = &tail[end..];
    }
    found
}

#[test]
fn the_alert_rules_use_metrics_the_daemon_exports() {
    let series = exported_series();
    let path: PathBuf = root().join("examples/prometheus/alerts.yaml");
    let rules_file = &documents(&path)[0];
    let mut used = BTreeSet::new();
    let mut alerts = BTreeSet::new();
    for group in rules_file["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            let alert = str_of(&rule["alert"], "alert").to_owned();
            assert!(alerts.insert(alert.clone()), "{alert} is defined twice");
            assert!(
                rule["labels"]["severity"].is_string(),
                "{alert}: no severity"
            );
            assert!(
                rule["annotations"]["summary"].is_string(),
                "{alert}: no summary"
            );
            let expr = str_of(&rule["expr"], "expr");
            let found = selectors(expr);
            assert!(!found.is_empty(), "{alert} uses no cfgroups metric");
            for (name, labels) in found {
                let known = series
                    .get(&name)
                    .unwrap_or_else(|| panic!("{alert}: the daemon exports no {name}"));
                for label in &labels {
                    assert!(
                        known.contains(label),
                        "{alert}: {name} has no label {label}"
                    );
                }
                used.insert(name);
            }
        }
    }
    // What the rules must watch.
    for needed in [
        "cfgroups_build_info",
        "cfgroups_drift_groups",
        "cfgroups_account_last_reconcile_successful",
        "cfgroups_account_last_success_timestamp_seconds",
        "cfgroups_deletions_total",
        "cfgroups_config_last_reload_successful",
        "cfgroups_api_rate_limited_total",
        "cfgroups_leader",
    ] {
        assert!(used.contains(needed), "no alert on {needed}");
    }
    let drift = rules_file["groups"][0]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| str_of(&r["expr"], "expr").contains("cfgroups_drift_groups"))
        .unwrap();
    assert_eq!(drift["for"], "1h", "drift alerts after an hour");
}

/// The alerts are tested on synthetic series with Prometheus' own `promtool` (Debian's
/// `prometheus` package; `.ci/run` installs it): each fires when something is wrong and
/// stays silent on the ordinary states that look like it. Without promtool this fails and
/// says so, rather than pass having proved nothing.
#[test]
fn the_alert_rules_pass_their_promtool_tests() {
    let dir = root().join("examples/prometheus");
    let promtool = |args: &[&str]| {
        std::process::Command::new("promtool")
            .args(args)
            .current_dir(&dir)
            .output()
            .unwrap_or_else(|e| {
                panic!("promtool cannot run ({e}): install it with `apt-get install prometheus`")
            })
    };
    let check = promtool(&["check", "rules", "alerts.yaml"]);
    assert!(
        check.status.success(),
        "promtool check rules:\n{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let test = promtool(&["test", "rules", "alerts.test.yaml"]);
    assert!(
        test.status.success(),
        "promtool test rules:\n{}{}",
        String::from_utf8_lossy(&test.stdout),
        String::from_utf8_lossy(&test.stderr)
    );

    // Every alert is tested, both firing and silent.
    let rules = &documents(&dir.join("alerts.yaml"))[0];
    let tests = &documents(&dir.join("alerts.test.yaml"))[0];
    let mut fired = BTreeSet::new();
    let mut silent = BTreeSet::new();
    for case in tests["tests"].as_array().unwrap() {
        for check in case["alert_rule_test"].as_array().unwrap() {
            let name = str_of(&check["alertname"], "alertname").to_owned();
            if check["exp_alerts"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
            {
                fired.insert(name);
            } else {
                silent.insert(name);
            }
        }
    }
    for group in rules["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            let alert = str_of(&rule["alert"], "alert");
            assert!(fired.contains(alert), "no test where {alert} fires");
            assert!(silent.contains(alert), "no test where {alert} stays silent");
        }
    }
}

#[test]
fn selector_parsing_finds_names_and_labels() {
    assert_eq!(
        selectors("rate(cfgroups_a_total{result=\"x\", kind!~\"y\"}[5m]) / cfgroups_b"),
        vec![
            (
                "cfgroups_a_total".to_owned(),
                BTreeSet::from(["kind".to_owned(), "result".to_owned()])
            ),
            ("cfgroups_b".to_owned(), BTreeSet::new()),
        ]
    );
}
