"""Paths that mirror Captum's (``captum.attr._utils``), so imports of Captum's LRP rules switch by package name."""
