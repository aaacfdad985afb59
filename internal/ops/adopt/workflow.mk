# workflow.mk: the database targets of the user story (make -f Makefile.ai
# ai-db-backup-all, ai-db-restore BACKUP=…, ...), one line each calling aidb.
# aidb's own Makefile.ai includes it; aidb init writes it, whole, into the
# Makefile.ai of a project that adopts aidb. What it needs set before it:
#   AIDB        the aidb command (aidb's Makefile.ai: bin/aidb; else aidb)
#   AIDB_BUILD  what the targets depend on to have it (empty: nothing)
#   RULESDB     the database the ai-db-* targets act on (the story's rulesdb)
#   MEMORYDB    the database the ai-memorydb-* targets act on (the story's
#               memorydb; empty for a project with one database)
# DB=name on make's command line points the ai-db-* targets at another
# database of aidb.yaml (a DB in the environment does not: it is too common
# a name to trust).

.PHONY: ai-db-up ai-db-down ai-db-nuke ai-db-status ai-db-migrate ai-db-seed ai-up ai-image \
	ai-db-backup-all ai-db-backup ai-memorydb-backup ai-memorydb-schema-backup ai-db-schema-backup \
	ai-db-backup-data-only ai-memorydb-backup-data-only ai-db-list ai-db-prune ai-db-check ai-db-serve ai-db-push ai-db-pull \
	ai-db-restore-all ai-db-restore ai-memorydb-restore ai-db-restore-data ai-memorydb-restore-data \
	ai-db-verify ai-db-verify-all ai-db-upgrade ai-db-pitr-enable ai-db-pitr-disable ai-db-pitr-prune ai-db-pitr-push ai-db-pitr-pull ai-db-restore-pitr

# aidb's advice names make targets when it runs from one of these (and
# aidb commands when run by hand).
ai-%: export AIDB_VIA_MAKE := 1

RULESDB_DB = $(if $(filter command line,$(origin DB)),$(DB),$(RULESDB))
MEMORYDB_DB = $(or $(MEMORYDB),$(error this project has one database ($(RULESDB)): the ai-memorydb-* targets need MEMORYDB=<a database of aidb.yaml>; use the ai-db-* targets))
RESTORE_ALL_VARS = $(RULESDB)=RULESDB_FILE$(if $(MEMORYDB),$(comma)$(MEMORYDB)=MEMORYDB_FILE)
RESTORE_ALL_ARGS = $(RULESDB)="$$RULESDB_FILE"$(if $(MEMORYDB), $(MEMORYDB)="$$MEMORYDB_FILE")
comma := ,

# Backup targets verify each new file (a restore into a throwaway container)
# unless VERIFY=0.
VERIFY ?= 1
# Yes/no variables take 1/yes/true/on or 0/no/false/off; anything else is
# refused rather than silently read as one or the other.
yes = $(filter 1 y yes true on,$(1))
no  = $(filter 0 n no false off,$(1))
yesno = $(if $(call yes,$($(1))),1,$(if $(or $(call no,$($(1))),$(if $($(1)),,x)),,$(error $(1)=$($(1)): give $(1)=1 or $(1)=0 (yes/no, true/false also work))))
VERIFY_FLAG = $(if $(call no,$(VERIFY)),,$(if $(call yesno,VERIFY),--verify))
# Backup targets leave the roles' passwords out unless ROLE_PASSWORDS=1,
# which puts their hashes into the files and manifests (secrets, then).
ROLE_PASSWORDS ?= 0
BACKUP_FLAGS = $(VERIFY_FLAG) $(if $(call no,$(ROLE_PASSWORDS)),,$(if $(call yesno,ROLE_PASSWORDS),--with-role-passwords))

# ai-db-prune keeps, of each database and kind, the newest KEEP intact
# backups and the newest of each of the newest KEEP_HOURLY hours, KEEP_DAILY
# days, KEEP_WEEKLY weeks, KEEP_MONTHLY months and KEEP_YEARLY years (and what
# aidb prune --help says it always keeps), in the folder and the repository.
# With none of them set, aidb.yaml's retention rules apply, else KEEP=10. It
# only shows the plan unless YES=1.
KEEP_FLAGS = $(strip $(foreach v,KEEP KEEP_HOURLY KEEP_DAILY KEEP_WEEKLY KEEP_MONTHLY KEEP_YEARLY,$(if $($(v)),--$(subst _,-,$(if $(filter KEEP,$(v)),keep-last,$(call lc,$(v)))) $($(v)))))
lc = $(subst KEEP_,keep_,$(subst HOURLY,hourly,$(subst DAILY,daily,$(subst WEEKLY,weekly,$(subst MONTHLY,monthly,$(subst YEARLY,yearly,$(1)))))))


ai-db-up: $(AIDB_BUILD)
	$(AIDB) up

ai-db-down: $(AIDB_BUILD)
	$(AIDB) down

ai-db-nuke: $(AIDB_BUILD)
	$(AIDB) nuke --yes

# The rest of the compose project (API, frontend) as well, in depends_on order.
ai-up: $(AIDB_BUILD)
	$(AIDB) up --all

ai-db-status: $(AIDB_BUILD)
	$(AIDB) status

ai-db-migrate: $(AIDB_BUILD)
	$(AIDB) migrate

ai-db-seed: $(AIDB_BUILD)
	$(AIDB) seed --if-empty

ai-db-backup-all: $(AIDB_BUILD)
	$(AIDB) backup $(BACKUP_FLAGS)

ai-db-backup: $(AIDB_BUILD)
	$(AIDB) backup $(RULESDB_DB) $(BACKUP_FLAGS)

ai-memorydb-backup: $(AIDB_BUILD)
	$(AIDB) backup $(MEMORYDB_DB) $(BACKUP_FLAGS)

ai-db-schema-backup: $(AIDB_BUILD)
	$(AIDB) backup $(RULESDB_DB) --schema-only $(BACKUP_FLAGS)

ai-memorydb-schema-backup: $(AIDB_BUILD)
	$(AIDB) backup $(MEMORYDB_DB) --schema-only $(BACKUP_FLAGS)

ai-db-backup-data-only: $(AIDB_BUILD)
	$(AIDB) backup $(RULESDB_DB) --data-only $(BACKUP_FLAGS)

ai-memorydb-backup-data-only: $(AIDB_BUILD)
	$(AIDB) backup $(MEMORYDB_DB) --data-only $(BACKUP_FLAGS)

ai-db-list: $(AIDB_BUILD)
	$(AIDB) list

# ai-db-check exits 4 when a database has no full backup younger than
# MAX_AGE (default 26h: a nightly backup with slack); VERIFIED=1 also asks
# for a verified one.
MAX_AGE ?= 26h
export MAX_AGE
ai-db-check: $(AIDB_BUILD)
	$(AIDB) check --max-age "$$MAX_AGE" $(if $(VERIFIED),$(if $(call yesno,VERIFIED),--verified))

# ai-db-serve runs backup, verify, prune (aidb.yaml's retention) and push
# (with a repository) on SCHEDULE until stopped; METRICS_ADDR, NOTIFY_URL
# and PING_URL are optional.
export SCHEDULE METRICS_ADDR NOTIFY_URL PING_URL
ai-db-serve: $(AIDB_BUILD)
	$(if $(SCHEDULE),,$(error give SCHEDULE, e.g. SCHEDULE='30 2 * * *' (02:30 daily) or SCHEDULE='@every 6h'))$(AIDB) serve --schedule "$$SCHEDULE" $(if $(METRICS_ADDR),--metrics-addr "$$METRICS_ADDR") $(if $(NOTIFY_URL),--notify-url "$$NOTIFY_URL") $(if $(PING_URL),--ping-url "$$PING_URL")

ai-db-prune: $(AIDB_BUILD)
	$(AIDB) prune --make-target=$@ $(strip $(KEEP_FLAGS) $(if $(call yesno,YES),--yes))

# The repository (AIDB_REPOSITORY=s3://BUCKET[/PREFIX]): upload the backups it
# lacks; download one (PULL=s3://…/file) into the folder, checked.
ai-db-push: $(AIDB_BUILD)
	$(AIDB) push

override PULL := $(value PULL)
export PULL
ai-db-pull: $(AIDB_BUILD)
	$(AIDB) pull -- "$$PULL"

# Restores replace data: the targets pass --yes (the data being replaced is
# backed up first). BACKUP / BACKUP_FILE / RULESDB_FILE / MEMORYDB_FILE name
# the files, as in the user story. They reach the recipes through the
# environment, as typed (make does not expand $ in them), and the shell
# reads them as "$$BACKUP": a name with spaces, quotes, $ or a leading -
# is passed whole, after --. --make-target and --file-var let aidb name
# the target's own variable when the file is missing.
override BACKUP        := $(value BACKUP)
override BACKUP_FILE   := $(value BACKUP_FILE)
override RULESDB_FILE  := $(value RULESDB_FILE)
override MEMORYDB_FILE := $(value MEMORYDB_FILE)
override JUNIT         := $(value JUNIT)
export BACKUP BACKUP_FILE RULESDB_FILE MEMORYDB_FILE JUNIT

ai-db-restore-all: $(AIDB_BUILD)
	$(AIDB) restore --yes --all --make-target=$@ --file-var=$(RESTORE_ALL_VARS) -- $(RESTORE_ALL_ARGS)

ai-db-restore: $(AIDB_BUILD)
	$(AIDB) restore --yes --make-target=$@ --file-var=$(RULESDB_DB)=BACKUP -- $(RULESDB_DB) "$$BACKUP"

ai-memorydb-restore: $(AIDB_BUILD)
	$(AIDB) restore --yes --make-target=$@ --file-var=$(MEMORYDB_DB)=BACKUP_FILE -- $(MEMORYDB_DB) "$$BACKUP_FILE"

ai-db-restore-data: $(AIDB_BUILD)
	$(AIDB) restore --yes --data-only --make-target=$@ --file-var=$(RULESDB_DB)=BACKUP -- $(RULESDB_DB) "$$BACKUP"

ai-memorydb-restore-data: $(AIDB_BUILD)
	$(AIDB) restore --yes --data-only --make-target=$@ --file-var=$(MEMORYDB_DB)=BACKUP_FILE -- $(MEMORYDB_DB) "$$BACKUP_FILE"

ai-db-verify: $(AIDB_BUILD)
	$(AIDB) verify $(if $(IMAGE),--image "$(IMAGE)") -- "$$BACKUP"

# Another PostgreSQL major: DB=rulesdb IMAGE=postgres:17 backs up, restores
# on a new volume, verifies and switches, keeping the old container and
# volume until FINISH=1 removes them or ROLLBACK=1 switches back.
ai-db-upgrade: $(AIDB_BUILD)
	$(AIDB) upgrade $(if $(call yesno,FINISH),--finish,$(if $(call yesno,ROLLBACK),--rollback,--image "$(IMAGE)")) -- "$(DB)"

# Point-in-time recovery: DB=rulesdb streams its WAL into the backup folder
# (a sidecar running pg_receivewal on a slot) and takes a base backup.
ai-db-pitr-enable: $(AIDB_BUILD)
	$(AIDB) pitr enable -- $(RULESDB_DB)

# DB=rulesdb stops the stream: the sidecar removed, the slot dropped; the
# segments and base backups stay in the folder.
ai-db-pitr-disable: $(AIDB_BUILD)
	$(AIDB) pitr disable -- $(RULESDB_DB)

# WINDOW=7d keeps every time of the last 7 days recoverable and removes the
# base backups and WAL segments that does not need (of DB=name, else of
# every database with base backups); it only shows the plan unless YES=1.
ai-db-pitr-prune: $(AIDB_BUILD)
	$(AIDB) pitr prune --keep-window "$(WINDOW)" $(if $(call yesno,YES),--yes) $(if $(filter command line,$(origin DB)),-- $(DB))

# The WAL segments and base backups the repository (AIDB_REPOSITORY) lacks
# go to it (of DB=name, else of every database with a stream); aidb serve
# does this every 10 seconds. ai-db-pitr-pull fetches what the folder lacks.
ai-db-pitr-push: $(AIDB_BUILD)
	$(AIDB) pitr push $(if $(filter command line,$(origin DB)),-- $(DB))

ai-db-pitr-pull: $(AIDB_BUILD)
	$(AIDB) pitr pull $(if $(filter command line,$(origin DB)),-- $(DB))

# DB=rulesdb TIME="2026-12-05 15:01:30" (or LSN=0/3000028, or LATEST=1) recovers into a new
# volume and switches to it, keeping the old container and volume until
# FINISH=1 removes them or ROLLBACK=1 switches back.
ai-db-restore-pitr: $(AIDB_BUILD)
	$(AIDB) restore --yes $(if $(call yesno,FINISH),--finish,$(if $(call yesno,ROLLBACK),--rollback,$(if $(call yesno,LATEST),--to-latest,$(if $(LSN),--to-lsn "$(LSN)",--to-time "$(TIME)")))) -- $(RULESDB_DB)

# The CI restore-validation job: every backup in the folder; JUNIT=file
# also writes a JUnit report.
# SHARD=I/N verifies the I-th of N parts (CI runners splitting the folder).
# Each equal backup is also checked with pg_amcheck (every btree index
# against its table) unless AMCHECK=0.
AMCHECK ?= 1
ai-db-verify-all: $(AIDB_BUILD)
	$(AIDB) verify --all $(if $(call no,$(AMCHECK)),,--amcheck) $(if $(SHARD),--shard '$(SHARD)') $(if $(JUNIT),--junit "$$JUNIT")

# Snapshots: template databases on each database's own server (see
# docs/reference.md, "Snapshots and resets"). ai-db-snapshot keeps every
# database as it is (NAME=… names the snapshot; default: the time);
# ai-db-reset puts back the newest (or NAME=…), keeping what it replaces
# (UNDO=1 goes back to it); connections to a database refuse either unless
# YES=1 ends them (a snapshot only minds those in a transaction).
# ai-db-snapshots lists them.
.PHONY: ai-db-snapshot ai-db-reset ai-db-snapshots
override NAME := $(value NAME)
export NAME
ai-db-snapshot: $(AIDB_BUILD)
	$(AIDB) snapshot $(if $(NAME),--name "$$NAME") $(if $(call yesno,YES),--yes)

ai-db-reset: $(AIDB_BUILD)
	$(AIDB) reset $(if $(call yesno,UNDO),--undo,$(if $(NAME),--to "$$NAME")) $(if $(call yesno,YES),--yes)

ai-db-snapshots: $(AIDB_BUILD)
	$(AIDB) snapshot list

ai-image: $(AIDB_BUILD)
	$(AIDB) image build
