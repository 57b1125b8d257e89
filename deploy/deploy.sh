#!/usr/bin/env bash
# Deploys Kumo into one Google Cloud project: APIs, Firestore, Artifact Registry, images built
# with Cloud Build, service accounts and their narrow roles, secrets, the runner Cloud Run jobs,
# the app's Cloud Run service, its Cloud Tasks launch queue, the kumo-reconcile job and the
# scheduler that runs it each minute. With KUMO_VM_RUNNERS=true also the Compute Engine backend
# (one VM per CI job): the runner VM image, its instance template, firewall and IAM.
#
# Idempotent: each step looks the resource up before creating it, and updates what exists, so
# run it again after any change. It prints every command that changes something.
#
#   PROJECT_ID=my-project deploy/deploy.sh          # reads APP_ID etc. from ./.env if present
#   DRY_RUN=1 PROJECT_ID=my-project deploy/deploy.sh  # only print the commands
#   KUMO_VM_RUNNERS=true PROJECT_ID=my-project deploy/deploy.sh  # also the Compute Engine backend
#
# Every setting below can be overridden from the environment; deploy/README.md describes them.
# Written for bash 3.2 too (macOS), hence no bash 4 features.
set -euo pipefail

cd "$(dirname "$0")/.."

# ---------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------
PROJECT_ID="${PROJECT_ID:-}"
REGION="${REGION:-us-central1}"
FIRESTORE_LOCATION="${FIRESTORE_LOCATION:-$REGION}"
AR_REPO="${AR_REPO:-kumo}"
SERVICE_NAME="${SERVICE_NAME:-kumo}"
RECONCILE_JOB="${RECONCILE_JOB:-kumo-reconcile}"
RECONCILE_TIMEOUT="${RECONCILE_TIMEOUT:-300s}"
SCHEDULER_JOB="${SCHEDULER_JOB:-kumo-reconcile-every-minute}"
SCHEDULER_LOCATION="${SCHEDULER_LOCATION:-$REGION}"
RECONCILE_SCHEDULE="${RECONCILE_SCHEDULE:-* * * * *}"
RUNNER_SA_NAME="${RUNNER_SA_NAME:-kumo-runner}"
APP_SA_NAME="${APP_SA_NAME:-kumo-app}"
SCHEDULER_SA_NAME="${SCHEDULER_SA_NAME:-kumo-scheduler}"
# The launch queue: one JIT budget for every instance and the reconcile job. LAUNCH_QUEUE= (empty)
# deploys without it (launches inline, each process pacing itself).
LAUNCH_QUEUE="${LAUNCH_QUEUE-kumo-launch}"
# GitHub allows an app about 180 JIT registrations a minute. The queue's burst (derived by Cloud
# Tasks from the rate; see `gcloud tasks queues describe`) comes on top of the rate in any minute,
# so the rate leaves room for it: 2.5/s is 150 a minute.
QUEUE_DISPATCHES_PER_SECOND="${QUEUE_DISPATCHES_PER_SECOND:-2.5}"
QUEUE_MAX_CONCURRENT="${QUEUE_MAX_CONCURRENT:-20}"
# A task the route answers 429/503 (GitHub's secondary limit, a 5xx) is retried with backoff;
# after the last attempt reconcile still relaunches the job while it is queued.
QUEUE_MAX_ATTEMPTS="${QUEUE_MAX_ATTEMPTS:-20}"
QUEUE_MIN_BACKOFF="${QUEUE_MIN_BACKOFF:-2s}"
QUEUE_MAX_BACKOFF="${QUEUE_MAX_BACKOFF:-60s}"
# The path of the launch route on the service (KUMO_TASKS_URL = service URL + this).
LAUNCH_ROUTE="${LAUNCH_ROUTE:-/api/kumo/launch}"
PRIVATE_KEY_SECRET="${PRIVATE_KEY_SECRET:-kumo-private-key}"
WEBHOOK_SECRET_NAME="${WEBHOOK_SECRET_NAME:-kumo-webhook-secret}"
SMALL_CPU="${SMALL_CPU:-2}"
SMALL_MEMORY="${SMALL_MEMORY:-4Gi}"
LARGE_CPU="${LARGE_CPU:-4}"
LARGE_MEMORY="${LARGE_MEMORY:-16Gi}"
# Runner jobs to apply, as FILE:CPU:MEMORY separated by spaces. Add your own job files here.
RUNNER_JOBS="${RUNNER_JOBS:-runner/job.yaml:$SMALL_CPU:$SMALL_MEMORY runner/job-large.yaml:$LARGE_CPU:$LARGE_MEMORY}"
LOG_LEVEL="${LOG_LEVEL:-info}"
# Compute Engine runners (a VM per CI job, with Docker): off unless KUMO_VM_RUNNERS=true. Off,
# nothing below of it is created, changed or even looked up.
KUMO_VM_RUNNERS="${KUMO_VM_RUNNERS:-false}"
# Region of the runner VMs' subnet (and of Cloud NAT, when used): the zones of a
# compute-engine runner spec in kumo.yml must be in it.
VM_REGION="${VM_REGION:-$REGION}"
# The instance template a compute-engine spec names (instanceTemplate: in kumo.yml).
VM_TEMPLATE="${VM_TEMPLATE:-kumo-runner-docker}"
VM_MACHINE_TYPE="${VM_MACHINE_TYPE:-e2-standard-4}"
VM_DISK_SIZE="${VM_DISK_SIZE:-50GB}"
VM_DISK_TYPE="${VM_DISK_TYPE:-pd-balanced}"
# Compute Engine deletes a runner VM after this, whatever it is doing (a spec's maxRunMinutes
# overrides it per VM). Keep workflows' timeout-minutes below it.
VM_MAX_RUN_DURATION="${VM_MAX_RUN_DURATION:-6h}"
VM_SA_NAME="${VM_SA_NAME:-kumo-runner-vm}"
VM_IMAGE_FAMILY="${VM_IMAGE_FAMILY:-kumo-runner}"
VM_NETWORK="${VM_NETWORK:-default}"
VM_SUBNET="${VM_SUBNET:-$VM_NETWORK}"
# true: each VM gets an ephemeral external IP for its egress (GitHub, registries), and a
# deny-all-ingress firewall rule guards it. false: no external IP, egress through Cloud NAT
# (VM_ROUTER/VM_NAT in VM_REGION). deploy/README.md compares the two.
VM_EXTERNAL_IP="${VM_EXTERNAL_IP:-true}"
VM_NETWORK_TAG="${VM_NETWORK_TAG:-kumo-runner}"
VM_FIREWALL_RULE="${VM_FIREWALL_RULE:-kumo-runner-deny-ingress}"
VM_ROUTER="${VM_ROUTER:-kumo-router}"
VM_NAT="${VM_NAT:-kumo-nat}"
# The custom role with the unconditioned reads the app needs (see step 6b).
VM_APP_ROLE="${VM_APP_ROLE:-kumoRunnerVmLauncher}"
# false: do not bake; the template uses the newest image of VM_IMAGE_FAMILY as it is.
VM_BAKE_IMAGE="${VM_BAKE_IMAGE:-true}"
DOTENV_FILE="${DOTENV_FILE:-.env}"
DRY_RUN="${DRY_RUN:-0}"
# A named database is passed to the app as FIRESTORE_DATABASE_ID.
FIRESTORE_DATABASE="${FIRESTORE_DATABASE:-(default)}"
# Kumo's collections whose documents expire, and the field they expire by (app/store): fixed, not settings.
TTL_COLLECTIONS='kumo-jobs kumo-redeliveries kumo-explained'
TTL_FIELD='expireAt'

# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------
# shellcheck source=deploy/lib.sh
. deploy/lib.sh

# retry CMD...: IAM changes right after creating a service account can fail until it has
# propagated; try a few times before giving up.
retry() {
  local attempt=1
  until "$@"; do
    if ((attempt >= 5)); then return 1; fi
    note "not yet, retrying in $((attempt * 5))s"
    sleep $((attempt * 5))
    attempt=$((attempt + 1))
  done
}

# dotenv_get KEY: the value of KEY in DOTENV_FILE (what Probot's setup wrote), quotes removed.
dotenv_get() {
  local line
  [[ -f $DOTENV_FILE ]] || return 0
  line=$(grep -E "^$1=" "$DOTENV_FILE" | tail -n 1) || return 0
  line=${line#*=}
  line=${line%$'\r'}
  case $line in
  \"*\") line=${line#\"} && line=${line%\"} ;;
  \'*\') line=${line#\'} && line=${line%\'} ;;
  esac
  printf '%s' "$line"
}

# ensure_sa NAME DESCRIPTION: create the service account unless it exists.
ensure_sa() {
  local email="$1@$PROJECT_ID.iam.gserviceaccount.com"
  if have iam service-accounts describe "$email"; then
    note "service account $email exists"
  else
    gc iam service-accounts create "$1" --display-name="$2"
  fi
}

# ensure_secret NAME FILE: create the secret unless it exists; add FILE's content as a new
# version when it differs from the latest one. Without FILE the latest version must exist.
ensure_secret() {
  local name="$1" file="$2"
  if have secrets describe "$name"; then
    note "secret $name exists"
  else
    gc secrets create "$name" --replication-policy=automatic
  fi
  if [[ -n $file ]]; then
    if [[ $DRY_RUN != 1 ]] && cmp -s "$file" <(value secrets versions access latest --secret="$name"); then
      note "secret $name: value unchanged, no new version"
    else
      gc secrets versions add "$name" --data-file="$file"
    fi
  elif [[ $DRY_RUN != 1 ]] && ! have secrets versions describe latest --secret="$name"; then
    die "secret $name has no value: give it (see deploy/README.md)"
  else
    note "secret $name: no new value given, keeping the latest version"
  fi
}

# render FILE CPU MEMORY OUT: fill a runner job file's placeholders.
render() {
  local file="$1" out="$4" cpu image sa memory
  escape() { printf '%s' "$1" | sed 's/[&|\\]/\\&/g'; }
  image=$(escape "$RUNNER_IMAGE")
  sa=$(escape "$RUNNER_SA")
  cpu=$(escape "$2")
  memory=$(escape "$3")
  sed -e "s|\\\$[{]RUNNER_IMAGE[}]|$image|g" \
    -e "s|\\\$[{]RUNNER_SA[}]|$sa|g" \
    -e "s|\\\$[{]CPU[}]|$cpu|g" \
    -e "s|\\\$[{]MEMORY[}]|$memory|g" \
    "$file" >"$out"
  if grep -Eq '\$\{[A-Z_]+\}' "$out"; then
    die "$file has a placeholder deploy.sh does not fill: $(grep -Eo '\$\{[A-Z_]+\}' "$out" | head -n 1)"
  fi
}

# job_name FILE: metadata.name of a job YAML file.
job_name() { awk '/^metadata:/ { m = 1; next } m && /^  name:/ { print $2; exit }' "$1"; }


# ---------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------
[[ -n $PROJECT_ID ]] || die "PROJECT_ID is required, e.g. PROJECT_ID=my-project deploy/deploy.sh"
command -v gcloud >/dev/null || die "gcloud is required (https://cloud.google.com/sdk/docs/install)"
[[ $KUMO_VM_RUNNERS == true || $KUMO_VM_RUNNERS == false ]] ||
  die "KUMO_VM_RUNNERS must be true or false, not '$KUMO_VM_RUNNERS'"
[[ $VM_EXTERNAL_IP == true || $VM_EXTERNAL_IP == false ]] ||
  die "VM_EXTERNAL_IP must be true or false, not '$VM_EXTERNAL_IP'"

APP_ID="${APP_ID:-$(dotenv_get APP_ID)}"
WEBHOOK_SECRET="${WEBHOOK_SECRET:-$(dotenv_get WEBHOOK_SECRET)}"
PRIVATE_KEY_FILE="${PRIVATE_KEY_FILE:-}"
PRIVATE_KEY="${PRIVATE_KEY:-}"
if [[ -z $PRIVATE_KEY_FILE && -z $PRIVATE_KEY ]]; then PRIVATE_KEY="$(dotenv_get PRIVATE_KEY)"; fi
[[ -n $APP_ID ]] || die "APP_ID is required (the GitHub App's id; Probot's setup writes it to .env)"
[[ -z $PRIVATE_KEY_FILE || -f $PRIVATE_KEY_FILE ]] || die "PRIVATE_KEY_FILE $PRIVATE_KEY_FILE does not exist"

WORK_DIR="$(mktemp -d)"
trap 'rm -rf "$WORK_DIR"' EXIT
umask 077

# The secrets go to Secret Manager from files, never on a command line.
if [[ -z $PRIVATE_KEY_FILE && -n $PRIVATE_KEY ]]; then
  # .env holds the PEM on one line with literal \n; store it as the PEM file it stands for.
  PRIVATE_KEY_FILE="$WORK_DIR/private-key.pem"
  printf '%b\n' "$PRIVATE_KEY" | awk 'NF' >"$PRIVATE_KEY_FILE"
fi
WEBHOOK_SECRET_FILE=""
if [[ -n $WEBHOOK_SECRET ]]; then
  WEBHOOK_SECRET_FILE="$WORK_DIR/webhook-secret"
  printf '%s' "$WEBHOOK_SECRET" >"$WEBHOOK_SECRET_FILE"
fi

if [[ -z ${IMAGE_TAG:-} ]]; then
  # The commit when the tree is clean (read-only git look-ups), else the time: never reuse a tag
  # for different content.
  if git rev-parse --verify -q HEAD >/dev/null 2>&1 && git diff-index --quiet HEAD -- 2>/dev/null; then
    IMAGE_TAG="$(git rev-parse --short=12 HEAD)"
  else
    IMAGE_TAG="$(date -u +%Y%m%d-%H%M%S)"
  fi
fi
REGISTRY="$REGION-docker.pkg.dev/$PROJECT_ID/$AR_REPO"
# Set APP_IMAGE or RUNNER_IMAGE to deploy an image that exists instead of building one.
BUILD_APP=1
BUILD_RUNNER=1
if [[ -n ${APP_IMAGE:-} ]]; then BUILD_APP=0; else APP_IMAGE="$REGISTRY/kumo:$IMAGE_TAG"; fi
if [[ -n ${RUNNER_IMAGE:-} ]]; then BUILD_RUNNER=0; else RUNNER_IMAGE="$REGISTRY/gha-runner:$IMAGE_TAG"; fi

RUNNER_SA="$RUNNER_SA_NAME@$PROJECT_ID.iam.gserviceaccount.com"
APP_SA="$APP_SA_NAME@$PROJECT_ID.iam.gserviceaccount.com"
SCHEDULER_SA="$SCHEDULER_SA_NAME@$PROJECT_ID.iam.gserviceaccount.com"
VM_SA="$VM_SA_NAME@$PROJECT_ID.iam.gserviceaccount.com"
# Runner names, VM names and their label: <prefix>-<job id>-<attempt>-<hex>, kumo-runner=<prefix>.
RUNNER_PREFIX="${KUMO_RUNNER_PREFIX:-kumo}"

mode=""
if [[ $DRY_RUN == 1 ]]; then mode=" (dry run: printing the commands only)"; fi
log "Deploying Kumo to project $PROJECT_ID, region $REGION$mode"
note "app image:    $APP_IMAGE"
note "runner image: $RUNNER_IMAGE"
note "runner jobs:  $RUNNER_JOBS"
if [[ $KUMO_VM_RUNNERS == true ]]; then
  note "runner VMs:   template $VM_TEMPLATE ($VM_MACHINE_TYPE, image family $VM_IMAGE_FAMILY) in $VM_REGION"
else
  note "runner VMs:   off (KUMO_VM_RUNNERS=true deploys the Compute Engine backend)"
fi

# ---------------------------------------------------------------------------------------------
# 1. APIs (iam: to create the service accounts)
# ---------------------------------------------------------------------------------------------
log "Enabling APIs"
apis=(run.googleapis.com firestore.googleapis.com artifactregistry.googleapis.com
  cloudbuild.googleapis.com secretmanager.googleapis.com cloudscheduler.googleapis.com
  cloudtasks.googleapis.com iam.googleapis.com)
if [[ $KUMO_VM_RUNNERS == true ]]; then apis+=(compute.googleapis.com); fi
gc services enable "${apis[@]}"

# ---------------------------------------------------------------------------------------------
# 2. Firestore (native mode) and the TTLs that delete old job and redelivery documents
# ---------------------------------------------------------------------------------------------
log "Firestore database $FIRESTORE_DATABASE in $FIRESTORE_LOCATION"
if have firestore databases describe --database="$FIRESTORE_DATABASE"; then
  note "database exists"
else
  gc firestore databases create --database="$FIRESTORE_DATABASE" \
    --location="$FIRESTORE_LOCATION" --type=firestore-native
fi

for collection in $TTL_COLLECTIONS; do
  log "Firestore TTL on $collection.$TTL_FIELD"
  ttl_state="$(value firestore fields ttls list --database="$FIRESTORE_DATABASE" \
    --collection-group="$collection" --format='value(name,ttlConfig.state)' |
    awk -v f="/fields/$TTL_FIELD" 'index($1, f) { print $2 }')"
  if [[ $ttl_state == ACTIVE || $ttl_state == CREATING ]]; then
    note "TTL policy is $ttl_state"
  else
    # --async: building a TTL policy takes minutes; nothing below waits for it.
    gc firestore fields ttls update "$TTL_FIELD" --database="$FIRESTORE_DATABASE" \
      --collection-group="$collection" --enable-ttl --async
  fi
done

# ---------------------------------------------------------------------------------------------
# 3. Artifact Registry and images
# ---------------------------------------------------------------------------------------------
log "Artifact Registry repository $AR_REPO"
if have artifacts repositories describe "$AR_REPO" --location="$REGION"; then
  note "repository exists"
else
  gc artifacts repositories create "$AR_REPO" --location="$REGION" --repository-format=docker \
    --description="Kumo images"
fi

if [[ $BUILD_RUNNER == 1 ]]; then
  log "Building the runner image with Cloud Build"
  gc builds submit runner --tag="$RUNNER_IMAGE"
else
  note "RUNNER_IMAGE given: not building the runner image"
fi
if [[ $BUILD_APP == 1 ]]; then
  log "Building the app image with Cloud Build"
  # .dockerignore keeps node_modules, .env and keys out of the upload too.
  gc builds submit . --tag="$APP_IMAGE" --ignore-file=.dockerignore
else
  note "APP_IMAGE given: not building the app image"
fi

# ---------------------------------------------------------------------------------------------
# 4. Service accounts
# ---------------------------------------------------------------------------------------------
log "Service accounts"
# The runners' identity: no roles at all, since any workflow step can get its token.
ensure_sa "$RUNNER_SA_NAME" "Kumo runner (no roles)"
ensure_sa "$APP_SA_NAME" "Kumo app"
ensure_sa "$SCHEDULER_SA_NAME" "Kumo reconcile scheduler"
if [[ $KUMO_VM_RUNNERS == true ]]; then
  # The runner VMs' identity: no roles either, and no scopes on the VMs (step 6b).
  ensure_sa "$VM_SA_NAME" "Kumo runner VMs (no roles)"
fi

log "Roles of $APP_SA on the project: Firestore read and write"
retry gc projects add-iam-policy-binding "$PROJECT_ID" --member="serviceAccount:$APP_SA" \
  --role=roles/datastore.user --condition=None --format=none

# ---------------------------------------------------------------------------------------------
# 5. Secrets: the app may read these two and nothing else
# ---------------------------------------------------------------------------------------------
log "Secrets"
ensure_secret "$PRIVATE_KEY_SECRET" "$PRIVATE_KEY_FILE"
ensure_secret "$WEBHOOK_SECRET_NAME" "$WEBHOOK_SECRET_FILE"
for secret in "$PRIVATE_KEY_SECRET" "$WEBHOOK_SECRET_NAME"; do
  retry gc secrets add-iam-policy-binding "$secret" --member="serviceAccount:$APP_SA" \
    --role=roles/secretmanager.secretAccessor --condition=None --format=none
done

# ---------------------------------------------------------------------------------------------
# 6. Runner jobs, and the app's roles on each of them only
# ---------------------------------------------------------------------------------------------
log "Runner jobs"
for entry in $RUNNER_JOBS; do
  file="${entry%%:*}"
  rest="${entry#*:}"
  cpu="${rest%%:*}"
  memory="${rest#*:}"
  [[ -f $file && -n $cpu && -n $memory && $rest == *:* ]] ||
    die "RUNNER_JOBS entry '$entry' is not FILE:CPU:MEMORY with an existing FILE"
  rendered="$WORK_DIR/$(basename "$file")"
  render "$file" "$cpu" "$memory" "$rendered"
  name="$(job_name "$rendered")"
  [[ -n $name ]] || die "$file has no metadata.name"
  note "$name from $file: $cpu CPU, $memory"
  gc run jobs replace "$rendered" --region="$REGION"
  # jobsExecutorWithOverrides: run.jobs.run, run.jobs.runWithOverrides (the per-execution JIT
  # config) and run.executions.cancel. run.viewer: read the job and list/get its executions,
  # which the reconcile pass needs. Running a job needs no actAs on its service account
  # (only creating or changing the job does), so the app gets no role on kumo-runner.
  for role in roles/run.jobsExecutorWithOverrides roles/run.viewer; do
    retry gc run jobs add-iam-policy-binding "$name" --region="$REGION" \
      --member="serviceAccount:$APP_SA" --role="$role" --format=none
  done
done

# ---------------------------------------------------------------------------------------------
# 6b. Compute Engine runners (KUMO_VM_RUNNERS=true): image, instance template, network, IAM
# ---------------------------------------------------------------------------------------------
if [[ $KUMO_VM_RUNNERS == true ]]; then
  log "Network for the runner VMs ($VM_NETWORK, tag $VM_NETWORK_TAG)"
  # Nothing may connect to a runner VM: the runner only connects out (to GitHub, over HTTPS).
  # Priority 100 wins over the default network's allow rules (SSH, RDP, ICMP from anywhere).
  if have compute firewall-rules describe "$VM_FIREWALL_RULE"; then
    note "firewall rule $VM_FIREWALL_RULE exists"
  else
    gc compute firewall-rules create "$VM_FIREWALL_RULE" --network="$VM_NETWORK" \
      --direction=INGRESS --action=DENY --rules=all --source-ranges=0.0.0.0/0 \
      --target-tags="$VM_NETWORK_TAG" --priority=100 \
      --description="Kumo runner VMs accept no inbound connections"
  fi
  if [[ $VM_EXTERNAL_IP == false ]]; then
    # Egress without external IPs: Cloud NAT on a Cloud Router in the VMs' region.
    if have compute routers describe "$VM_ROUTER" --region="$VM_REGION"; then
      note "router $VM_ROUTER exists"
    else
      gc compute routers create "$VM_ROUTER" --network="$VM_NETWORK" --region="$VM_REGION"
    fi
    if have compute routers nats describe "$VM_NAT" --router="$VM_ROUTER" --region="$VM_REGION"; then
      note "Cloud NAT $VM_NAT exists"
    else
      gc compute routers nats create "$VM_NAT" --router="$VM_ROUTER" --region="$VM_REGION" \
        --auto-allocate-nat-external-ips --nat-all-subnet-ip-ranges
    fi
  fi

  # The baked image: Debian 12 + Docker + the runner of runner/Dockerfile (runner/README.md
  # says why). Skipped in seconds when the image of this version exists. After the network:
  # without external IPs, the builder needs Cloud NAT too.
  if [[ $VM_BAKE_IMAGE == true ]]; then
    PROJECT_ID="$PROJECT_ID" REGION="$REGION" VM_REGION="$VM_REGION" \
      VM_IMAGE_FAMILY="$VM_IMAGE_FAMILY" VM_NETWORK="$VM_NETWORK" VM_SUBNET="$VM_SUBNET" \
      VM_EXTERNAL_IP="$VM_EXTERNAL_IP" VM_NETWORK_TAG="$VM_NETWORK_TAG" DRY_RUN="$DRY_RUN" \
      bash runner/vm/bake-image.sh
  else
    note "VM_BAKE_IMAGE=false: using the newest image of family $VM_IMAGE_FAMILY as it is"
  fi

  log "Instance template $VM_TEMPLATE"
  # The app inserts each VM from it, adding only the name, the label, the JIT config as
  # metadata item kumo-jit-config and a max run duration. The VM account has no roles and
  # the VMs get no scopes: any job step can read the metadata server, and a token it gets
  # there is good for nothing. block-project-ssh-keys: project-wide SSH keys do not apply.
  template_flags=(--machine-type="$VM_MACHINE_TYPE"
    --image-family="$VM_IMAGE_FAMILY" --image-project="$PROJECT_ID"
    --boot-disk-size="$VM_DISK_SIZE" --boot-disk-type="$VM_DISK_TYPE"
    --network="$VM_NETWORK" --subnet="$VM_SUBNET" --region="$VM_REGION"
    --tags="$VM_NETWORK_TAG" --labels="kumo-runner=$RUNNER_PREFIX"
    --service-account="$VM_SA" --no-scopes
    --metadata-from-file=startup-script=runner/vm/startup.sh
    --metadata=block-project-ssh-keys=TRUE
    --provisioning-model=STANDARD --max-run-duration="$VM_MAX_RUN_DURATION"
    --instance-termination-action=DELETE)
  if [[ $VM_EXTERNAL_IP == false ]]; then template_flags+=(--no-address); fi
  # Templates cannot be changed: the description carries a hash of the flags and the startup
  # script, and a template that differs is replaced. Launches in the second between delete and
  # create fail; reconcile launches those jobs again.
  template_hash="$({
    printf '%s\n' "${template_flags[@]}"
    cat runner/vm/startup.sh
  } | sha256 - | cut -c1-12)"
  template_description="Kumo runner VM, one per CI job (config $template_hash)"
  if have compute instance-templates describe "$VM_TEMPLATE"; then
    current="$(value compute instance-templates describe "$VM_TEMPLATE" --format='value(description)')"
    if [[ $current == "$template_description" ]]; then
      note "template is up to date (config $template_hash)"
    else
      note "template differs from this deployment: replacing it"
      gc compute instance-templates delete "$VM_TEMPLATE"
      gc compute instance-templates create "$VM_TEMPLATE" "${template_flags[@]}" \
        --description="$template_description"
    fi
  else
    gc compute instance-templates create "$VM_TEMPLATE" "${template_flags[@]}" \
      --description="$template_description"
  fi

  log "Roles of $APP_SA for the runner VMs"
  # 1. Create, change and delete instances and disks named <prefix>-… and nothing else:
  #    instanceAdmin.v1 under a condition on the resource name (a boot disk is named after its
  #    VM). extract() is empty for any other resource type, so nothing else of the role applies.
  vm_condition="resource.name.extract(\"/instances/{name}\").startsWith(\"$RUNNER_PREFIX-\")"
  vm_condition="$vm_condition || resource.name.extract(\"/disks/{name}\").startsWith(\"$RUNNER_PREFIX-\")"
  retry gc projects add-iam-policy-binding "$PROJECT_ID" --member="serviceAccount:$APP_SA" \
    --role=roles/compute.instanceAdmin.v1 --format=none \
    --condition="title=kumo-runner-vms,description=Only Kumo runner VMs and their disks,expression=$vm_condition"
  # 2. What a name condition cannot cover, as a custom role of reads only: list (reconcile's
  #    sweep by label is an aggregatedList, checked on the project), the zone operations (why an
  #    insert failed: a stock-out shows only there), reading and using the template and the
  #    image of its family.
  vm_permissions="compute.instances.list,compute.zoneOperations.get,compute.zoneOperations.list"
  vm_permissions="$vm_permissions,compute.instanceTemplates.get"
  vm_permissions="$vm_permissions,compute.instanceTemplates.useReadOnly,compute.images.get"
  vm_permissions="$vm_permissions,compute.images.getFromFamily,compute.images.useReadOnly"
  role_flags=(--project="$PROJECT_ID" --title="Kumo runner VM launcher"
    --description="Reads Kumo needs to create runner VMs from its template and sweep them"
    --permissions="$vm_permissions" --stage=GA)
  if have iam roles describe "$VM_APP_ROLE"; then
    gc iam roles update "$VM_APP_ROLE" "${role_flags[@]}"
  else
    gc iam roles create "$VM_APP_ROLE" "${role_flags[@]}"
  fi
  retry gc projects add-iam-policy-binding "$PROJECT_ID" --member="serviceAccount:$APP_SA" \
    --role="projects/$PROJECT_ID/roles/$VM_APP_ROLE" --condition=None --format=none
  # 3. Attach VMs to the one subnet (and give them an external IP): networkUser on it only.
  retry gc compute networks subnets add-iam-policy-binding "$VM_SUBNET" --region="$VM_REGION" \
    --member="serviceAccount:$APP_SA" --role=roles/compute.networkUser --format=none
  # 4. Create VMs that run as the VM account (actAs), on that account only.
  retry gc iam service-accounts add-iam-policy-binding "$VM_SA" \
    --member="serviceAccount:$APP_SA" --role=roles/iam.serviceAccountUser --format=none
fi

# ---------------------------------------------------------------------------------------------
# 7. The app: Cloud Run service (webhooks) and kumo-reconcile job, same image, env and secrets
# ---------------------------------------------------------------------------------------------
# On Cloud Run the app logs JSON lines with severity and message for Cloud Logging by itself.
env_vars="APP_ID=$APP_ID,GOOGLE_CLOUD_PROJECT=$PROJECT_ID,CLOUD_RUN_REGION=$REGION,LOG_LEVEL=$LOG_LEVEL"
if [[ $FIRESTORE_DATABASE != '(default)' ]]; then
  env_vars="$env_vars,FIRESTORE_DATABASE_ID=$FIRESTORE_DATABASE"
fi
# Passed on only when set here, so the app's own defaults apply otherwise.
for optional in GHE_HOST GHE_PROTOCOL KUMO_RUNNER_PREFIX KUMO_SETTINGS_TTL_SECONDS \
  KUMO_LAUNCH_LEASE_SECONDS KUMO_JIT_PER_MINUTE KUMO_JIT_MAX_WAIT_MS KUMO_STORE_TIMEOUT_MS \
  KUMO_DELIVERY_DEADLINE_MS KUMO_MAX_BODY_KB; do
  if [[ -n ${!optional:-} ]]; then env_vars="$env_vars,$optional=${!optional}"; fi
done
# The app launches VMs only when told that this deployment has the Compute Engine backend.
if [[ $KUMO_VM_RUNNERS == true ]]; then env_vars="$env_vars,KUMO_COMPUTE_ENGINE=true"; fi
secrets="PRIVATE_KEY=$PRIVATE_KEY_SECRET:latest,WEBHOOK_SECRET=$WEBHOOK_SECRET_NAME:latest"

if [[ -n $LAUNCH_QUEUE ]]; then
  log "Cloud Tasks launch queue $LAUNCH_QUEUE"
  queue_flags=(--location="$REGION" --max-dispatches-per-second="$QUEUE_DISPATCHES_PER_SECOND"
    --max-concurrent-dispatches="$QUEUE_MAX_CONCURRENT" --max-attempts="$QUEUE_MAX_ATTEMPTS"
    --min-backoff="$QUEUE_MIN_BACKOFF" --max-backoff="$QUEUE_MAX_BACKOFF")
  if have tasks queues describe "$LAUNCH_QUEUE" --location="$REGION"; then
    gc tasks queues update "$LAUNCH_QUEUE" "${queue_flags[@]}"
  else
    gc tasks queues create "$LAUNCH_QUEUE" "${queue_flags[@]}"
  fi
  # The app enqueues on this queue only, with an OIDC token of its own account (actAs on itself).
  retry gc tasks queues add-iam-policy-binding "$LAUNCH_QUEUE" --location="$REGION" \
    --member="serviceAccount:$APP_SA" --role=roles/cloudtasks.enqueuer --format=none
  retry gc iam service-accounts add-iam-policy-binding "$APP_SA" \
    --member="serviceAccount:$APP_SA" --role=roles/iam.serviceAccountUser --format=none
  # The service's deterministic URL, known before its first deployment.
  project_number="$(value projects describe "$PROJECT_ID" --format='value(projectNumber)')"
  tasks_url="https://$SERVICE_NAME-${project_number:-PROJECT_NUMBER}.$REGION.run.app$LAUNCH_ROUTE"
  env_vars="$env_vars,KUMO_LAUNCH_QUEUE=projects/$PROJECT_ID/locations/$REGION/queues/$LAUNCH_QUEUE"
  env_vars="$env_vars,KUMO_TASKS_URL=$tasks_url,KUMO_TASKS_SERVICE_ACCOUNT=$APP_SA"
fi

log "Cloud Run service $SERVICE_NAME"
# --allow-unauthenticated: GitHub must reach it; every webhook is verified by its signature.
# --cpu-boost: faster cold starts, as GitHub waits only 10 s for an answer.
gc run deploy "$SERVICE_NAME" --image="$APP_IMAGE" --region="$REGION" \
  --service-account="$APP_SA" --set-env-vars="$env_vars" --set-secrets="$secrets" \
  --allow-unauthenticated --min-instances=0 --concurrency=80 --cpu-boost

log "Cloud Run job $RECONCILE_JOB"
# No retries: the scheduler starts a fresh pass every minute anyway.
gc run jobs deploy "$RECONCILE_JOB" --image="$APP_IMAGE" --region="$REGION" \
  --service-account="$APP_SA" --set-env-vars="$env_vars" --set-secrets="$secrets" \
  --command=node --args=dist/app/entry/reconcile-cli.js \
  --tasks=1 --max-retries=0 --task-timeout="$RECONCILE_TIMEOUT" --cpu=1 --memory=512Mi

# ---------------------------------------------------------------------------------------------
# 8. Scheduler: run kumo-reconcile every minute through the Cloud Run Admin API
# ---------------------------------------------------------------------------------------------
log "Cloud Scheduler job $SCHEDULER_JOB ($RECONCILE_SCHEDULE)"
# The scheduler's account may run this one job and nothing else.
retry gc run jobs add-iam-policy-binding "$RECONCILE_JOB" --region="$REGION" \
  --member="serviceAccount:$SCHEDULER_SA" --role=roles/run.invoker --format=none
run_uri="https://run.googleapis.com/v2/projects/$PROJECT_ID/locations/$REGION/jobs/$RECONCILE_JOB:run"
if have scheduler jobs describe "$SCHEDULER_JOB" --location="$SCHEDULER_LOCATION"; then
  verb=update
else
  verb=create
fi
# An OAuth token (not OIDC): the target is a Google API, not the service.
gc scheduler jobs "$verb" http "$SCHEDULER_JOB" --location="$SCHEDULER_LOCATION" \
  --schedule="$RECONCILE_SCHEDULE" --time-zone=Etc/UTC --uri="$run_uri" --http-method=POST \
  --oauth-service-account-email="$SCHEDULER_SA"

# ---------------------------------------------------------------------------------------------
# Done
# ---------------------------------------------------------------------------------------------
service_url="$(value run services describe "$SERVICE_NAME" --region="$REGION" --format='value(status.url)')"
log "Done"
note "Set the GitHub App's webhook URL (App settings > General > Webhook) to:"
printf '%s/api/github/webhooks\n' "${service_url:-https://<service-url>}"
