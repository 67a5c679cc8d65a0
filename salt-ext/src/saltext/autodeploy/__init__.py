"""saltext.autodeploy: Salt's side of autodeploy.

Salt finds this package through the ``salt.loader`` entry point and loads
the modules in its loader-type dirs (``engines/``). The C library is
reached only through :mod:`saltext.autodeploy.utils.libautodeploy`.
"""

__version__ = "0.1.0"
