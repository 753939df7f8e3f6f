"""Exchange with other SNN toolchains: NIR import (``nir_import``) and export (``nir_export``)."""
