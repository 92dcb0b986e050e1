# SPDX-License-Identifier: MIT
# ---- systemd/: socket activation, the system user, the socket's directory ----
# shmallocd.service itself is made from doc/shmallocd.service.in (doc/local.mk).
systemdsystemunit_DATA += systemd/shmallocd.socket
EXTRA_DIST += systemd/shmallocd.socket systemd/shmalloc.sysusers systemd/shmalloc.tmpfiles \
	systemd/check-security.sh
# Installed under the names systemd-sysusers and systemd-tmpfiles read.
install-data-local: install-systemd-conf
uninstall-local: uninstall-systemd-conf
install-systemd-conf:
	$(MKDIR_P) '$(DESTDIR)$(sysusersdir)' '$(DESTDIR)$(tmpfilesdir)'
	$(INSTALL_DATA) $(top_srcdir)/systemd/shmalloc.sysusers '$(DESTDIR)$(sysusersdir)/shmalloc.conf'
	$(INSTALL_DATA) $(top_srcdir)/systemd/shmalloc.tmpfiles '$(DESTDIR)$(tmpfilesdir)/shmalloc.conf'
uninstall-systemd-conf:
	rm -f '$(DESTDIR)$(sysusersdir)/shmalloc.conf' '$(DESTDIR)$(tmpfilesdir)/shmalloc.conf'
.PHONY: install-systemd-conf uninstall-systemd-conf
