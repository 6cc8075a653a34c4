"""coroproc.config — corosync.conf: parser, schema, Corosync 3.1 defaults, local node.

Entry points: ``load(path, nodeid_override=None) -> (NodeConfig, warnings)`` and
``check_main(path, nodeid_override=None, out=sys.stdout) -> exit status``. See
docs/config.md.
"""
from coroproc.config.check import check_main
from coroproc.config.errors import ConfigParseError, ConfigWarning, Entry
from coroproc.config.loader import load
from coroproc.config.model import (CoroprocSection, LinkConfig, LoggingConfig, NodeConfig,
                                   NodeEntry, QuorumConfig, SubsysLogging)
from coroproc.config.parser import ParseResult, parse_bytes, parse_file, parse_text

__all__ = [
    "check_main", "load", "ConfigParseError", "ConfigWarning", "Entry", "NodeConfig",
    "NodeEntry", "LinkConfig", "LoggingConfig", "SubsysLogging", "QuorumConfig",
    "CoroprocSection", "ParseResult", "parse_bytes", "parse_file", "parse_text",
]
