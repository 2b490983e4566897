"""Names of the built-in mitigation actions a watcher's steps may use."""

# NOTE: only the names exist so far. A step with one of these names is stored
# and shown, but no executor runs it until the action modules are written.
KNOWN_ACTIONS: frozenset[str] = frozenset(
    {
        "scale_replicas",
        "scale_horizontally",
        "restart_high_memory_pods",
        "rollback_deployment",
        "activate_circuit_breaker",
        "enhanced_logging",
        "clear_caches",
        "tighten_rate_limits",
        "temporary_ip_block",
        "selective_blocking",
        "analyze_client_patterns",
        "traffic_analysis",
        "disable_feature_flags",
        "garbage_collection_force",
        "activate_enhanced_waf",
        "forensic_logging",
        "cert_validation",
        "backup_cert_check",
        "automated_cert_renewal",
        "health_check_dependencies",
        "kill_long_running_queries",
        "connection_pool_optimization",
        "scale_db_instances",
        "log_rotation",
        "temp_file_cleanup",
        "archive_old_data",
        "security_team_alert",
    }
)
