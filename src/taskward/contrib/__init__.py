"""Integrations of taskward with other frameworks, each an optional extra imported only when
used (``taskward.contrib.django`` needs ``taskward[django]``)."""
