"""Names of the attributes hpo records on Optuna trials and studies: one place, so readers and writers agree.

Trial user attrs are what the dashboard, the exporter, recovery and MLflow reconciliation read
back; a typo in one of them is a silent bug, so every module uses these constants.
"""

from __future__ import annotations

# --- trial user attrs -------------------------------------------------------------------------
SEED = "seed"                          # the trial's own seed, derived from the study seed
MLFLOW_RUN_ID = "mlflow_run_id"        # the trial's MLflow child run
PRUNED_AT_EPOCH = "pruned_at_epoch"    # last reported step of a pruned trial
FAIL_REASON = "fail_reason"            # one line: why the trial failed
METRIC_MISSING = "metric_missing"      # True: it failed for want of the study metric (hpo._errors.MetricMissing)
CHECKPOINT = "checkpoint"              # path of the trial's best weights
WORKER = "worker"                      # "<host>:<pid>" of the process running the trial
WORKER_START = "worker_start"          # kernel start time of that pid (tells a reused pid apart)
NODE = "node"                          # the cluster engine's id of the node that ran the trial (Ray node id)
NODE_IP = "node_ip"                    # that node's IP address
CLUSTER_WORKER = "cluster_worker"      # the cluster engine's id of the worker (Ray task id): tells its trials
RETRY_OF = "retry_of"                  # the trial number this trial retries
RETRY_ORIGIN = "retry_origin"          # the first trial of a chain of retries
RETRY_COUNT = "retry_count"            # how many retries of the origin this is
RETRY_REASON = "retry_reason"          # why the origin was retried
GRID_POINT = "grid_point"              # enqueued by grid search
WARM_START = "warm_start"              # queued or added from study.warm_start (which item)
DDP_RANKS = "ddp_ranks"                # how many ranks trained the trial
TEACHER_CHECKPOINT = "teacher_checkpoint"
TEACHER_CACHE = "teacher_cache"        # whether the study-wide teacher was trained or reused
CV_FOLD_VALUES = "cv_fold_values"      # cross-validation: each fold's best value of the study metric
CV_STD = "cv_std"                      # cross-validation: the std of those values (population, ddof 0)
CV_FOLD_CURVES = "cv_fold_curves"      # cross-validation: {fold: [study metric per epoch]} (dashboard)

# --- study user attrs -------------------------------------------------------------------------
MLFLOW_PARENT_RUN_ID = "mlflow_parent_run_id"  # the study's MLflow parent run
STUDY_UUID = "study_uuid"              # the study's own identity; its MLflow runs carry it as a tag
STUDY_FIXED = "fixed"                  # objective.fixed at creation
STUDY_SEED = "seed"                    # study.seed at creation
STUDY_SPEC = "spec"                    # the whole space file at creation (the raw mapping)
STUDY_OBJECTIVE = "objective"          # objective.name at creation
STUDY_METRICS = "metrics"
STUDY_DIRECTIONS = "directions"
STUDY_SPACE_FILE = "space_file"
STUDY_GIT_SHA = "git_sha"
STUDY_N_TRIALS = "n_trials"          # the cap the latest `hpo run` used (--n-trials may differ from the file)

# --- study system attrs -----------------------------------------------------------------------
SLURM_JOBS = "hpo:slurm_jobs"          # [{"jobs": [SLURM job ids], "submitted": iso time}], one per `--cluster slurm` run
LOST_PREFIX = "hpo:lost:"              # + trial number: that trial's worker died or was interrupted
MLFLOW_RUN_PREFIX = "hpo:mlflow_run:"  # + trial number: its MLflow run id, when the run was created
                                       # after the trial ended (MLflow was still starting)

# --- trial system attrs ------------------------------------------------------------------------
BEAT = "hpo:beat"                      # the worker's beat count, through the proxy (hpo._beat)
