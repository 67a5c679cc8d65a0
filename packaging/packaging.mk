# packaging/packaging.mk - `make packages`: the Debian packages and the Salt
# extension's sdist and wheel (and with PKG_RPM=1 the RPMs), all into
# build/packages/. Included by the top-level Makefile. docs/packages.md.
#
#   make packages        .debs + sdist + wheel (+ .rpms when PKG_RPM=1)
#   make packages-deps   the packaging tools (idempotent, like `make deps`)
#   make packages-lint   lintian on the .debs (fails on errors)
#
# The Debian build runs in a copy of the repository (the files git tracks or
# would track, as they are in the work tree) at build/packages/tree/
# autodeploy-$(VERSION), with packaging/debian copied to debian/ there, so the
# checkout itself never gets a debian/ dir or build droppings.

PKG_OUT   := $(B)/packages
PKG_TREE  := $(PKG_OUT)/tree/autodeploy-$(VERSION)
PKG_STAMP := $(DEPS)/packaging-apt.stamp
PKG_APT   := debhelper dh-python pybuild-plugin-pyproject python3-all python3-setuptools \
  python3-build python3-wheel python3-venv chrpath lintian fakeroot dpkg-dev rpm
PKG_RPM   ?= 0
# Debian's own tools and Python (not a pyenv or venv python first on PATH).
PKG_PATH  := /usr/sbin:/usr/bin:/sbin:/bin

.PHONY: packages packages-deps packages-deb packages-py packages-rpm packages-lint packages-clean

packages: packages-deb packages-py $(if $(filter 1,$(PKG_RPM)),packages-rpm)
	@echo "packages: $(PKG_OUT)/"; ls -1 $(PKG_OUT) | grep -v -e '^tree$$' -e '^rpmbuild$$' | sed 's/^/  /'

packages-deps: $(PKG_STAMP)
$(PKG_STAMP): packaging/packaging.mk $(DEPS_APT)
	@mkdir -p $(@D)
	@missing=$$(for p in $(PKG_APT); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing packaging tools: $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@touch $@

# The tree: every file git knows about or would add (untracked, not ignored),
# minus .deps (a local symlink to the venvs and FerretDB).
packages-deb: $(PKG_STAMP)
	rm -rf $(PKG_OUT)/tree && mkdir -p $(PKG_TREE)
	git ls-files -z --cached --others --exclude-standard \
	  | grep -zv -e '^\.deps' -e '^build/' \
	  | xargs -0 sh -c 'for f; do [ -e "$$f" ] && printf "%s\0" "$$f"; done' sh \
	  | tar --null -T - -cf - | tar -xf - -C $(PKG_TREE)
	cp -a packaging/debian $(PKG_TREE)/debian
	cd $(PKG_TREE) && PATH=$(PKG_PATH) DEB_BUILD_OPTIONS="parallel=2 $(DEB_BUILD_OPTIONS)" \
	  dpkg-buildpackage -us -uc --build=full > ../../build.log 2>&1 \
	  || { tail -40 ../../build.log; exit 1; }
	rm -f $(PKG_OUT)/*.deb $(PKG_OUT)/*.ddeb $(PKG_OUT)/*.dsc $(PKG_OUT)/autodeploy_*.tar.* \
	  $(PKG_OUT)/*.buildinfo $(PKG_OUT)/*.changes
	mv $(PKG_OUT)/tree/*.deb $(PKG_OUT)/tree/*.dsc $(PKG_OUT)/tree/autodeploy_*.tar.* \
	  $(PKG_OUT)/tree/*.buildinfo $(PKG_OUT)/tree/*.changes $(PKG_OUT)/
	@ls $(PKG_OUT)/tree/*.ddeb >/dev/null 2>&1 && mv $(PKG_OUT)/tree/*.ddeb $(PKG_OUT)/ || true

# sdist + wheel of salt-ext, without network (Debian's setuptools, no
# isolated build env). A pure wheel: the library comes from libautodeploy0
# (or $AD_LIB); see docs/packages.md for salt-pip.
packages-py: $(PKG_STAMP)
	@mkdir -p $(PKG_OUT)
	rm -f $(PKG_OUT)/saltext[._]autodeploy-*
	rm -rf $(PKG_OUT)/py && cp -a salt-ext $(PKG_OUT)/py && rm -rf $(PKG_OUT)/py/build $(PKG_OUT)/py/src/*.egg-info
	/usr/bin/python3 -m build --no-isolation --sdist --wheel --outdir $(abspath $(PKG_OUT)) $(PKG_OUT)/py > $(PKG_OUT)/py-build.log 2>&1 \
	  || { tail -30 $(PKG_OUT)/py-build.log; exit 1; }
	rm -rf $(PKG_OUT)/py

packages-lint: packages-deb
	lintian --fail-on error --info $(PKG_OUT)/*.deb $(PKG_OUT)/*.dsc

# The RPM spec with the same split; built from a tarball of the same tree.
# Debian's rpm package carries rpmbuild, but not the Fedora/EL build
# dependencies, hence --nodeps: it checks the spec and the file lists, the
# real build belongs on an EL/Fedora builder.
packages-rpm: packages-deb
	rm -rf $(PKG_OUT)/rpmbuild $(PKG_OUT)/*.rpm && mkdir -p $(PKG_OUT)/rpmbuild/SOURCES
	tar -C $(PKG_OUT)/tree --exclude=autodeploy-$(VERSION)/debian --exclude=autodeploy-$(VERSION)/build --exclude=autodeploy-$(VERSION)/.pybuild -czf $(PKG_OUT)/rpmbuild/SOURCES/autodeploy-$(VERSION).tar.gz autodeploy-$(VERSION)
	rpmbuild -bb --nodeps --define '_topdir $(abspath $(PKG_OUT))/rpmbuild' packaging/rpm/autodeploy.spec \
	  > $(PKG_OUT)/rpm-build.log 2>&1 || { tail -30 $(PKG_OUT)/rpm-build.log; exit 1; }
	find $(PKG_OUT)/rpmbuild/RPMS -name '*.rpm' -exec mv {} $(PKG_OUT)/ \;

packages-clean:
	rm -rf $(PKG_OUT)
