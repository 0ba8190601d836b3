# Building and installing ingestd as a systemd service on Debian.
#
#   make                   build the release binary (cargo, into $(CARGO_TARGET_DIR))
#   sudo make install      install binary, units, user, folders and /etc/ingestd/config.toml
#   make install DESTDIR=/tmp/pkg   stage the same files for a package (no system changes)
#
# After `sudo make install`: edit /etc/ingestd/config.toml, then `systemctl enable --now ingestd`.

PREFIX ?= /usr
DESTDIR ?=
CARGO_TARGET_DIR ?= $(HOME)/.cache/ingestd/target
BINARY := $(CARGO_TARGET_DIR)/release/ingestd
UNITDIR := $(PREFIX)/lib/systemd/system
SYSUSERSDIR := $(PREFIX)/lib/sysusers.d
TMPFILESDIR := $(PREFIX)/lib/tmpfiles.d
DOCDIR := $(PREFIX)/share/doc/ingestd

.PHONY: all install
all:
	CARGO_TARGET_DIR=$(CARGO_TARGET_DIR) cargo build --release --locked --bin ingestd

install:
	@test -x $(BINARY) || { echo "no $(BINARY): run 'make' first (as the user who builds)"; exit 1; }
	install -D -m 0755 $(BINARY) $(DESTDIR)$(PREFIX)/bin/ingestd
	install -D -m 0644 systemd/ingestd.service $(DESTDIR)$(UNITDIR)/ingestd.service
	install -D -m 0644 systemd/ingestd@.service $(DESTDIR)$(UNITDIR)/ingestd@.service
	install -D -m 0644 systemd/ingestd.sysusers $(DESTDIR)$(SYSUSERSDIR)/ingestd.conf
	install -D -m 0644 systemd/ingestd.tmpfiles $(DESTDIR)$(TMPFILESDIR)/ingestd.conf
	install -D -m 0644 README.md $(DESTDIR)$(DOCDIR)/README.md
	install -D -m 0644 contrib/prometheus/ingestd.rules.yml $(DESTDIR)$(DOCDIR)/prometheus/ingestd.rules.yml
	install -D -m 0644 contrib/grafana/ingestd.json $(DESTDIR)$(DOCDIR)/grafana/ingestd.json
	@# The example job with the service's absolute folders; an existing config is never replaced.
	@if [ ! -e $(DESTDIR)/etc/ingestd/config.toml ]; then \
		install -d -m 0755 $(DESTDIR)/etc/ingestd; \
		sed -e 's|"\./state"|"/var/lib/ingestd"|' -e 's|"\./quarantine"|"/srv/ingestd/quarantine"|' \
		    -e 's|"\./drop/|"/srv/ingestd/drop/|' -e 's|"\./lake/|"/srv/ingestd/lake/|' \
		    config.toml > $(DESTDIR)/etc/ingestd/config.toml; \
		chmod 0644 $(DESTDIR)/etc/ingestd/config.toml; \
		echo "wrote $(DESTDIR)/etc/ingestd/config.toml"; \
	fi
	@if [ -z "$(DESTDIR)" ]; then \
		systemd-sysusers $(SYSUSERSDIR)/ingestd.conf && \
		systemd-tmpfiles --create $(TMPFILESDIR)/ingestd.conf && \
		{ systemctl daemon-reload 2>/dev/null || true; } && \
		echo "installed: edit /etc/ingestd/config.toml, then: systemctl enable --now ingestd"; \
	fi
