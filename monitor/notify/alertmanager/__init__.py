"""The Alertmanager sink: alerts posted to Alertmanager's API v2, firing conditions re-posted
before they expire there (README "Alertmanager")."""
