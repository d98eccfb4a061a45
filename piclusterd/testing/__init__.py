"""Fakes and real-part fixtures that piclusterd's tests use, shipped for users' tests too."""
