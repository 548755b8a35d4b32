"""The bottom layer: errors and their codes, settings, session specs, request models and
their validation against openapi.yaml, files holding secrets, and every touch of another
package's internals (internals.py). Imports nothing of session_ext."""
