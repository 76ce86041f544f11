"""The classification rules, as data: one row per rule.

A row is ``R(id, kind, pattern, category, confidence, example, retryable=None)``:

- ``kind`` says where the pattern looks (strongest first): the run's or task's result state,
  the structured termination code and type, Spark/Delta error classes (``[TABLE_OR_VIEW_NOT_FOUND]``),
  SQLSTATEs, exception type names along the cause chain, and finally phrases of the text.
- ``pattern`` is a regular expression: matched in full against a state, code, type, error class,
  SQLSTATE or simple exception name; searched (case-insensitive) in the text for phrases.
- ``confidence`` is how sure the row alone makes us (0..1). The most confident match decides;
  the strength of the kind breaks ties.
- ``example`` is a value the row must match; ``tests/decide/test_rules.py`` checks every row against it,
  so adding a rule is one row here with its example.
- ``retryable`` (DEPENDENCY rows only): True when the failure is the package source being
  unreachable (retry), False when the package itself is wrong (a person must fix it).
- ``check`` (phrase rows only, rare): a predicate on the match, for facts a pattern cannot
  compare (a quota the cluster alone exceeds can never be met by a retry).
- Rows whose id ends in ``.other`` are fallbacks: they see only values no other row of their
  kind recognised.
- ``CLUSTER_EVENT`` rows match, in full, an event type or ``details.reason.code`` of the failed
  task's job cluster (``clusters/events``, read by ``shared.databricks.events`` when the rules are
  unsure or the failure looks like infrastructure): ``DRIVER_NOT_RESPONDING``, ``NODES_LOST``, spot
  loss, init-script failures, ``DBFS_DOWN``/``METASTORE_DOWN``.
- ``VETO`` rows (searched like phrases, along the whole bounded cause chain) name a *fixed
  condition* — credentials refused, TLS/certificate or proxy settings, a class, method or client
  version that does not fit, a host name that can never resolve, an endpoint this compute does not
  have. A connection refused/reset, a time-out or a resource symptom whose chain shows one is that
  condition: in the same task a veto outranks every transient reading, whatever its confidence
  (``shared.decide.classify``). ``tests/decide/test_rules.py`` checks each veto row twice: on its
  example alone, and under a transient symptom.

The ``VETO`` and ``CLUSTER_EVENT`` rows live in ``_fixed.py`` (the row type in ``_rule.py``) to keep
each module small; ``RULES`` here is the whole table.

Write rules that generalise: error classes, SQLSTATEs, exception types and structured codes
before phrases, and phrases that name the failure, not one job's data.
"""

from __future__ import annotations

import re

from shared.models import DETERMINISTIC, Category, EvidenceKind
from shared.decide._rule import R, Rule
from shared.decide._fixed import CLUSTER_EVENT_ROWS, VETO_ROWS

__all__ = ["Rule", "RULES", "RULES_BY_ID", "SYMPTOMS", "rules_of_kind", "get_rule"]

C = Category
K = EvidenceKind


def _needs_more_than_the_limit(m: re.Match) -> bool:
    """Cloud quota messages give the limit and what the cluster needs: when the cluster alone
    needs more than the whole limit, no retry can succeed until someone raises the quota."""
    return int(m.group("required")) > int(m.group("limit"))


RULES: tuple[Rule, ...] = (
    # ---- result and life-cycle states -------------------------------------------------------
    R("state.timedout", K.RESULT_STATE, r"TIMEDOUT", C.TIMEOUT, 0.95, "TIMEDOUT"),
    R("state.canceled", K.RESULT_STATE, r"CANCELED|CANCELLED|UPSTREAM_CANCELED", C.CANCELED, 0.9, "CANCELED"),
    R("state.max-concurrent", K.RESULT_STATE, r"MAXIMUM_CONCURRENT_RUNS_REACHED", C.CANCELED, 0.95,
      "MAXIMUM_CONCURRENT_RUNS_REACHED"),
    R("state.excluded", K.RESULT_STATE, r"EXCLUDED|DISABLED", C.CANCELED, 0.95, "EXCLUDED"),
    R("state.skipped", K.RESULT_STATE, r"SKIPPED", C.CANCELED, 0.95, "SKIPPED"),
    R("state.internal-error", K.RESULT_STATE, r"INTERNAL_ERROR", C.INFRASTRUCTURE, 0.6, "INTERNAL_ERROR"),

    # ---- termination codes (status.termination_details.code) --------------------------------
    R("code.user-canceled", K.TERMINATION_CODE, r"USER_CANCELED", C.CANCELED, 0.97, "USER_CANCELED"),
    R("code.skipped", K.TERMINATION_CODE, r"SKIPPED|DISABLED", C.CANCELED, 0.95, "SKIPPED"),
    R("code.max-concurrent", K.TERMINATION_CODE, r"MAX_CONCURRENT_RUNS_EXCEEDED", C.CANCELED, 0.95,
      "MAX_CONCURRENT_RUNS_EXCEEDED"),
    R("code.cloud-failure", K.TERMINATION_CODE, r"CLOUD_FAILURE", C.INFRASTRUCTURE, 0.93, "CLOUD_FAILURE"),
    R("code.cluster-error", K.TERMINATION_CODE, r"CLUSTER_ERROR", C.INFRASTRUCTURE, 0.8, "CLUSTER_ERROR"),
    R("code.internal-error", K.TERMINATION_CODE, r"INTERNAL_ERROR", C.INFRASTRUCTURE, 0.72, "INTERNAL_ERROR"),
    R("code.driver-error", K.TERMINATION_CODE, r"DRIVER_ERROR", C.INFRASTRUCTURE, 0.62, "DRIVER_ERROR"),
    R("code.library", K.TERMINATION_CODE, r"LIBRARY_INSTALLATION_ERROR", C.DEPENDENCY, 0.88,
      "LIBRARY_INSTALLATION_ERROR"),
    R("code.invalid-cluster", K.TERMINATION_CODE, r"INVALID_CLUSTER_REQUEST", C.CONFIGURATION, 0.92,
      "INVALID_CLUSTER_REQUEST"),
    R("code.resource-not-found", K.TERMINATION_CODE, r"RESOURCE_NOT_FOUND", C.CONFIGURATION, 0.9,
      "RESOURCE_NOT_FOUND"),
    R("code.invalid-run-config", K.TERMINATION_CODE, r"INVALID_RUN_CONFIGURATION", C.CONFIGURATION, 0.92,
      "INVALID_RUN_CONFIGURATION"),
    R("code.feature-disabled", K.TERMINATION_CODE, r"FEATURE_DISABLED|BREAKING_CHANGE", C.CONFIGURATION, 0.9,
      "FEATURE_DISABLED"),
    R("code.budget-policy", K.TERMINATION_CODE, r"BUDGET_POLICY_LIMIT_EXCEEDED", C.CONFIGURATION, 0.85,
      "BUDGET_POLICY_LIMIT_EXCEEDED"),
    R("code.repo-checkout", K.TERMINATION_CODE, r"REPOSITORY_CHECKOUT_FAILED", C.CONFIGURATION, 0.75,
      "REPOSITORY_CHECKOUT_FAILED"),
    R("code.unauthorized", K.TERMINATION_CODE, r"UNAUTHORIZED_ERROR", C.PERMISSION, 0.93, "UNAUTHORIZED_ERROR"),
    R("code.storage-access", K.TERMINATION_CODE, r"STORAGE_ACCESS_ERROR", C.PERMISSION, 0.75,
      "STORAGE_ACCESS_ERROR"),
    R("code.run-limit", K.TERMINATION_CODE,
      r"WORKSPACE_RUN_LIMIT_EXCEEDED|CLUSTER_REQUEST_LIMIT_EXCEEDED|MAX_JOB_QUEUE_SIZE_EXCEEDED|MAX_SPARK_CONTEXTS_EXCEEDED",
      C.CONCURRENCY, 0.92, "WORKSPACE_RUN_LIMIT_EXCEEDED"),

    *CLUSTER_EVENT_ROWS,

    # ---- termination type ---------------------------------------------------------------------
    R("type.cloud-failure", K.TERMINATION_TYPE, r"CLOUD_FAILURE", C.INFRASTRUCTURE, 0.85, "CLOUD_FAILURE"),
    R("type.internal-error", K.TERMINATION_TYPE, r"INTERNAL_ERROR", C.INFRASTRUCTURE, 0.6, "INTERNAL_ERROR"),

    # ---- Spark / Delta / Databricks error classes ------------------------------------------
    R("class.permissions", K.ERROR_CLASS,
      r"INSUFFICIENT_PERMISSIONS.*|PERMISSION_DENIED.*|UNAUTHORIZED_ACCESS.*|NO_PRIVILEGE.*|.*_PERMISSION_DENIED|"
      r"INVALID_CREDENTIAL.*|UC_.*PERMISSION.*|ACCESS_DENIED.*",
      C.PERMISSION, 0.95, "INSUFFICIENT_PERMISSIONS"),
    R("class.table-not-found", K.ERROR_CLASS,
      r"TABLE_OR_VIEW_NOT_FOUND.*|SCHEMA_NOT_FOUND.*|CATALOG_NOT_FOUND.*|DELTA_TABLE_NOT_FOUND.*|"
      r"DELTA_MISSING_DELTA_TABLE.*|PATH_NOT_FOUND.*|DELTA_PATH_DOES_NOT_EXIST.*|VOLUME_NOT_FOUND.*|"
      r"DELTA_FILE_NOT_FOUND.*|FAILED_READ_FILE.*|DELTA_TABLE_NOT_FOUND|TABLE_NOT_FOUND.*|NO_SUCH_TABLE.*|"
      r"SPARK_FILE_NOT_FOUND.*|DELTA_FILE_OR_DIR_NOT_FOUND.*",
      C.DATA, 0.93, "TABLE_OR_VIEW_NOT_FOUND"),
    R("class.schema", K.ERROR_CLASS,
      r"DELTA_SCHEMA_.*|DELTA_FAILED_TO_MERGE_FIELDS.*|DELTA_METADATA_MISMATCH.*|_LEGACY_ERROR_TEMP_DELTA.*|"
      r"INCOMPATIBLE_DATA_.*|CANNOT_MERGE_SCHEMAS.*|UNABLE_TO_INFER_SCHEMA.*|DELTA_READ_TABLE_WITHOUT_COLUMNS.*|"
      r"DELTA_.*SCHEMA_MISMATCH.*|INCOMPATIBLE_COLUMN_TYPE.*|COLUMN_ALREADY_EXISTS.*|DELTA_DUPLICATE_COLUMNS.*|"
      r"DELTA_SOURCE_.*|SOURCE_TABLE_IGNORE_CHANGES.*",
      C.DATA, 0.9, "DELTA_FAILED_TO_MERGE_FIELDS"),
    R("class.constraint", K.ERROR_CLASS,
      r"DELTA_NOT_NULL_CONSTRAINT_VIOLATED.*|DELTA_VIOLATE_CONSTRAINT.*|DELTA_.*CONSTRAINT.*|NOT_NULL_.*VIOLAT.*|"
      r"DELTA_MULTIPLE_SOURCE_ROW_MATCHING_TARGET_ROW_IN_MERGE.*|MERGE_CARDINALITY_VIOLATION.*|"
      r"DUPLICATE_KEY.*|UNIQUE_CONSTRAINT.*|CHECK_CONSTRAINT.*",
      C.DATA, 0.92, "DELTA_MULTIPLE_SOURCE_ROW_MATCHING_TARGET_ROW_IN_MERGE"),
    R("class.malformed-data", K.ERROR_CLASS,
      r"MALFORMED_RECORD_IN_PARSING.*|MALFORMED_.*FILE.*|CANNOT_READ_FILE_FOOTER.*|FAILED_READ_FILE.*|"
      r"CORRUPTED_.*|DELTA_LOG_FILE_NOT_FOUND.*|DELTA_VERSIONS_NOT_CONTIGUOUS.*|INVALID_JSON.*|"
      r"PARSE_.*RECORD.*|DELTA_TRUNCATED_TRANSACTION_LOG.*",
      C.DATA, 0.88, "MALFORMED_RECORD_IN_PARSING"),
    R("class.syntax", K.ERROR_CLASS,
      r"PARSE_SYNTAX_ERROR.*|PARSE_EMPTY_STATEMENT.*|INVALID_SQL_SYNTAX.*|UNCLOSED_BRACKETED_COMMENT.*|"
      r"UNSUPPORTED_FEATURE.*|INVALID_IDENTIFIER.*",
      C.CODE, 0.93, "PARSE_SYNTAX_ERROR"),
    R("class.unresolved", K.ERROR_CLASS,
      r"UNRESOLVED_COLUMN.*|UNRESOLVED_ROUTINE.*|UNRESOLVED_FIELD.*|UNRESOLVED_MAP_KEY.*|UNRESOLVED_ATTRIBUTE.*|"
      r"AMBIGUOUS_REFERENCE.*|AMBIGUOUS_COLUMN.*|MISSING_AGGREGATION.*|MISSING_GROUP_BY.*|"
      r"DATATYPE_MISMATCH.*|WRONG_NUM_ARGS.*|INVALID_PARAMETER_.*FUNCTION.*|NOT_A_NUMBER.*|"
      r"UNRESOLVED_.*|GROUP_BY_.*|INVALID_EXTRACT.*|NUM_COLUMNS_MISMATCH.*|INSERT_COLUMN_ARITY_MISMATCH.*|"
      r"COLUMN_NOT_FOUND.*|FIELD_NOT_FOUND.*|ROUTINE_NOT_FOUND.*|NON_.*_COLUMN.*|CANNOT_RESOLVE.*|"
      r"DELTA_MERGE_UNRESOLVED_EXPRESSION.*|CANNOT_UP_CAST_DATATYPE.*|UNSUPPORTED_DESERIALIZER.*",
      C.CODE, 0.92, "UNRESOLVED_COLUMN.WITH_SUGGESTION"),
    R("class.runtime-sql", K.ERROR_CLASS,
      r"DIVIDE_BY_ZERO.*|CAST_INVALID_INPUT.*|CAST_OVERFLOW.*|ARITHMETIC_OVERFLOW.*|NUMERIC_VALUE_OUT_OF_RANGE.*|"
      r"INVALID_ARRAY_INDEX.*|INVALID_INDEX_OF_ZERO.*|DATETIME_OVERFLOW.*|CANNOT_PARSE_TIMESTAMP.*|"
      r"INVALID_FRACTION_OF_SECOND.*|INVALID_FORMAT.*|CONVERSION_INVALID_INPUT.*|DATATYPE_.*|"
      r"INVALID_.*_ARGUMENT.*|ROW_SUBQUERY_TOO_MANY_ROWS.*|SCALAR_SUBQUERY_TOO_MANY_ROWS.*|"
      r"USER_RAISED_EXCEPTION.*|ASSERTION_FAILED.*|NULL_MAP_KEY.*|DUPLICATED_MAP_KEY.*|"
      r"PYTHON_.*|UDF_.*ERROR.*|INVALID_PANDAS_UDF.*",
      C.CODE, 0.88, "DIVIDE_BY_ZERO"),
    R("class.memory", K.ERROR_CLASS,
      r"UNABLE_TO_ACQUIRE_MEMORY.*|.*OUT_OF_MEMORY.*|DRIVER_OUT_OF_MEMORY.*|EXECUTOR_OUT_OF_MEMORY.*|"
      r"SPARK_JOB_CANCELLED.*MEMORY.*|TOTAL_SIZE_OF_SERIALIZED_RESULTS.*|BROADCAST_.*SIZE.*|"
      r"DISK_FULL.*|.*MAX_RESULT_SIZE.*|FAILED_TO_ACQUIRE_MEMORY.*",
      C.RESOURCE, 0.93, "UNABLE_TO_ACQUIRE_MEMORY"),
    R("class.concurrent", K.ERROR_CLASS,
      r"DELTA_CONCURRENT_.*|CONCURRENT_.*|DELTA_METADATA_CHANGED.*|DELTA_PROTOCOL_CHANGED.*|"
      r"CONCURRENT_QUERY.*|DELTA_CONCURRENT_APPEND.*|.*_CONCURRENT_UPDATE.*|TABLE_LOCKED.*|RESOURCE_CONFLICT.*|"
      r"RESOURCE_EXHAUSTED.*",
      C.CONCURRENCY, 0.93, "DELTA_CONCURRENT_APPEND"),
    R("class.config", K.ERROR_CLASS,
      r"INVALID_PARAMETER_VALUE.*|INVALID_CONF_VALUE.*|CONFIG_NOT_AVAILABLE.*|CONFIGURATION_.*|"
      r"UC_NOT_ENABLED.*|UNITY_CATALOG_.*NOT_ENABLED.*|UC_.*NOT_SUPPORTED.*|INVALID_SECRET.*|SECRET_.*NOT_FOUND.*|"
      r"NOTEBOOK_NOT_FOUND.*|WIDGET_.*|MISSING_.*PARAMETER.*|REQUIRES_SINGLE_PART_NAMESPACE.*|"
      r"NOT_SUPPORTED_WITH_SERVERLESS.*|.*_NOT_SUPPORTED_IN_SHARED_CLUSTER.*|UNSUPPORTED_.*MODE.*|"
      r"JVM_ATTRIBUTE_NOT_SUPPORTED.*|.*NOT_SUPPORTED_IN_SPARK_CONNECT.*|.*_NOT_ALLOWED_ON_.*CLUSTER.*|NOT_IMPLEMENTED.*|"
      r"OPERATION_REQUIRES_UNITY_CATALOG.*",
      C.CONFIGURATION, 0.88, "INVALID_PARAMETER_VALUE"),
    R("class.timeout", K.ERROR_CLASS,
      r".*TIMEOUT.*|.*TIMED_OUT.*|DEADLINE_EXCEEDED.*",
      C.TIMEOUT, 0.85, "STREAM_TIMEOUT"),
    R("class.network", K.ERROR_CLASS,
      r"TEMPORARILY_UNAVAILABLE.*|SERVICE_UNAVAILABLE.*|.*THROTTL.*|REQUEST_LIMIT_EXCEEDED.*|TOO_MANY_REQUESTS.*|"
      r"CONNECTION_.*|NETWORK_.*",
      C.NETWORK, 0.82, "TEMPORARILY_UNAVAILABLE"),
    R("class.internal", K.ERROR_CLASS, r"INTERNAL_ERROR.*", C.INFRASTRUCTURE, 0.6, "INTERNAL_ERROR"),
    R("class.does-not-exist", K.ERROR_CLASS, r"(TABLE|SCHEMA|CATALOG|VOLUME|PATH|LOCATION)_DOES_NOT_EXIST.*|"
      r".*_(TABLE|SCHEMA|PATH|FILE|LOCATION)_NOT_FOUND.*", C.DATA, 0.9, "TABLE_DOES_NOT_EXIST.RESOURCE_DOES_NOT_EXIST"),
    R("class.resource-missing", K.ERROR_CLASS, r"RESOURCE_DOES_NOT_EXIST.*|NOT_FOUND|FEATURE_DISABLED.*",
      C.CONFIGURATION, 0.75, "RESOURCE_DOES_NOT_EXIST"),
    # Any other error class: Spark names user errors this way far more often than platform ones.
    # Low confidence on purpose: the model (when configured) is asked, and nothing is retried.
    R("class.other", K.ERROR_CLASS, r"[A-Z][A-Z0-9_.]*", C.CODE, 0.55, "SOME_NEW_ERROR_CLASS"),

    # ---- SQLSTATEs ------------------------------------------------------------------------------
    R("sqlstate.permission", K.SQLSTATE, r"42501|28000|28P01|42000A", C.PERMISSION, 0.9, "42501"),
    R("sqlstate.table-not-found", K.SQLSTATE, r"42P01|42S02|42704|42P06|42K03", C.DATA, 0.88, "42P01"),
    R("sqlstate.syntax", K.SQLSTATE, r"42601|42000|42703|42702|42803|42804|42846|42K09|42883|42P20|42S22",
      C.CODE, 0.85, "42601"),
    R("sqlstate.data-exception", K.SQLSTATE, r"22012|22003|22018|22023|22P02|2200[0-9A-Z]|22008|22546",
      C.CODE, 0.82, "22012"),
    R("sqlstate.integrity", K.SQLSTATE, r"23[0-9A-Z]{3}", C.DATA, 0.88, "23502"),
    R("sqlstate.resources", K.SQLSTATE, r"53[0-9A-Z]{3}", C.RESOURCE, 0.88, "53200"),
    R("sqlstate.connection", K.SQLSTATE, r"08[0-9A-Z]{3}", C.NETWORK, 0.8, "08001"),
    R("sqlstate.concurrency", K.SQLSTATE, r"40001|40P01|2D521", C.CONCURRENCY, 0.85, "40001"),
    R("sqlstate.timeout", K.SQLSTATE, r"57014|HYT00|HYT01", C.TIMEOUT, 0.85, "HYT00"),
    R("sqlstate.system", K.SQLSTATE, r"XX[0-9A-Z]{3}|58[0-9A-Z]{3}", C.INFRASTRUCTURE, 0.6, "XX000"),
    R("sqlstate.class42", K.SQLSTATE, r"42[0-9A-Z]{3}", C.CODE, 0.7, "42K05"),
    R("sqlstate.class22", K.SQLSTATE, r"22[0-9A-Z]{3}", C.DATA, 0.7, "22P05"),

    # ---- exception types along the cause chain -----------------------------------------------
    R("exc.oom", K.EXCEPTION, r"OutOfMemoryError|OutOfMemorySparkException|SparkOutOfMemoryError|MemoryError|"
      r"OutOfMemoryException|DriverStoppedException", C.RESOURCE, 0.92, "OutOfMemoryError"),
    R("exc.concurrent-delta", K.EXCEPTION,
      r"Concurrent(Append|DeleteRead|DeleteDelete|Transaction|Write)Exception|MetadataChangedException|"
      r"ProtocolChangedException|ConcurrentModificationException|DeltaConcurrentModificationException|"
      r"CommitFailedException|LockTimeoutException|DeadlockLoserDataAccessException",
      C.CONCURRENCY, 0.93, "ConcurrentAppendException"),
    R("exc.timeout", K.EXCEPTION, r"TimeoutException|SocketTimeoutException|ReadTimeout(Error|Exception)?|"
      r"TimeoutError|ReadTimeoutError|"
      r"RpcTimeoutException|AskTimeoutException|QueryTimeoutException|StatementTimeoutException",
      C.TIMEOUT, 0.88, "TimeoutException"),
    R("exc.network", K.EXCEPTION, r"ConnectException|UnknownHostException|NoRouteToHostException|"
      r"SocketException|SSLException|SSLHandshakeException|SSLError|ConnectionError|ConnectionResetError|"
      r"ConnectionRefusedError|ConnectionAbortedError|BrokenPipeError|RemoteDisconnected|ProtocolError|"
      r"NoHttpResponseException|ClosedChannelException|EOFException|HttpHostConnectException|"
      r"ServiceUnavailableException|ThrottlingException|TooManyRequestsException|ProvisionedThroughputExceededException|"
      r"SlowDownException|ServerBusyException|ChunkedEncodingError|IncompleteRead|MaxRetryError|NameResolutionError|"
      r"ConnectTimeout(Error|Exception)?|ConnectTimeoutError|ConnectionTimeoutException",
      C.NETWORK, 0.85, "UnknownHostException"),
    R("exc.permission", K.EXCEPTION, r"AccessDeniedException|SecurityException|PermissionError|"
      r"AccessControlException|UnauthorizedAccessException|AuthorizationException|AuthenticationException|"
      r"AuthorizationPermissionMismatch|AuthorizationFailure|InsufficientPermissions?Exception|"
      r"PermissionDenied(Exception|Error)?|Forbidden(Exception|Error)?|Unauthorized(Exception|Error)?|"
      r"NotAuthorized(Exception|Error)?|InvalidAccessKeyId|SignatureDoesNotMatch|AuthenticationFailed(Exception)?|"
      r"ClientAuthenticationError|HttpResponseError403|InvalidCredentialsException|CredentialUnavailableError|"
      r"Authori[sz]ationFailed(Exception)?|"
      r"AbfsRestOperationException403",
      C.PERMISSION, 0.9, "AccessDeniedException"),
    R("exc.dependency", K.EXCEPTION, r"ModuleNotFoundError|ImportError|ClassNotFoundException|NoClassDefFoundError|"
      r"NoSuchMethodError|NoSuchFieldError|UnsatisfiedLinkError|IncompatibleClassChangeError|"
      r"DistributionNotFound|PackageNotFoundError|LinkageError|AbstractMethodError",
      C.DEPENDENCY, 0.88, "ModuleNotFoundError", False),
    R("exc.file-not-found", K.EXCEPTION, r"FileNotFoundException|FileNotFoundError|SparkFileNotFoundException|"
      r"NoSuchFileException|PathNotFoundException|NoSuchTableException|NoSuchDatabaseException|"
      r"NoSuchNamespaceException|TableNotFoundException|DeltaAnalysisException404|ResourceNotFoundException|"
      r"FileAlreadyExistsException|PathAlreadyExistsException|TableAlreadyExistsException|"
      r"FileAlreadyExistsError|PartitionAlreadyExistsException|NamespaceAlreadyExistsException",
      C.DATA, 0.88, "FileNotFoundException"),
    R("exc.data", K.EXCEPTION, r"InvariantViolationException|DeltaInvariantViolationException|"
      r"ParquetDecodingException|SchemaColumnConvertNotSupportedException|SchemaMismatchException|"
      r"DeltaColumnMappingUnsupportedException|MalformedInputException|CorruptRecordException|"
      r"IntegrityError|DataError|UnicodeDecodeError|JSONDecodeError|ParserError|EmptyDataError|"
      r"SparkUpgradeException|SchemaEvolutionException|DuplicateKeyException|ConstraintViolationException",
      C.DATA, 0.84, "InvariantViolationException"),
    R("exc.config", K.EXCEPTION, r"MissingConfigException|ConfigException|ConfigurationException|"
      r"InputWidgetNotDefined|WidgetNotDefined(Exception)?|InvalidConfigurationException|"
      r"IllegalConfigurationException|ConfigError|MissingSecretException|SecretNotFoundException|"
      r"ConfigurationPropertyNotFoundException|KeyProviderException|InvalidConfigurationValueException|"
      r"ReceiverDisconnectedException|BadConfigException",
      C.CONFIGURATION, 0.88, "MissingConfigException"),
    R("exc.restricted", K.EXCEPTION, r"Py4JSecurityException|SparkConnectGrpcException403|"
      r"UnsupportedOperationExceptionShared|SecurityManagerException",
      C.CONFIGURATION, 0.86, "Py4JSecurityException"),
    R("exc.code-python", K.EXCEPTION, r"NameError|TypeError|AttributeError|KeyError|IndexError|ValueError|"
      r"ZeroDivisionError|SyntaxError|IndentationError|UnboundLocalError|RecursionError|NotImplementedError|"
      r"AssertionError|ArithmeticException|LookupError|StopIteration|UnicodeEncodeError|OverflowError|"
      r"PythonException|DataFrameError|PySparkTypeError|PySparkValueError|PySparkAttributeError|"
      r"PySparkRuntimeError|PySparkAssertionError|ParseException|AnalysisException",
      C.CODE, 0.78, "NameError"),
    R("exc.code-jvm", K.EXCEPTION, r"NullPointerException|ClassCastException|NumberFormatException|"
      r"MatchError|IllegalArgumentException|ArrayIndexOutOfBoundsException|IndexOutOfBoundsException|"
      r"StringIndexOutOfBoundsException|NoSuchElementException|UnsupportedOperationException|"
      r"DateTimeParseException|DateTimeException|ArithmeticException|StackOverflowError|"
      r"ScalaReflectionException|UnresolvedException|SparkNumberFormatException|SparkArithmeticException|"
      r"SparkIllegalArgumentException|SparkDateTimeException|SparkRuntimeException|"
      r"NotebookExecutionException|WorkflowException|UserCodeException",
      C.CODE, 0.68, "NullPointerException"),

    R("exc.platform-error", K.EXCEPTION, r"InternalError|InternalServerError|ServiceUnavailableError|"
      r"TemporarilyUnavailableError|InternalErrorException",
      C.INFRASTRUCTURE, 0.78, "InternalError"),
    R("exc.other", K.EXCEPTION,
      r"(?!(Py4JJavaError|SparkException|ExecutionError|WorkflowException|StreamingQueryException|"
      r"RuntimeException|Exception|Error|Throwable|Failure|RestException|DatabricksError|"
      r"ServerOperationError|HiveSQLException|SQLException|IOException|UncheckedIOException|"
      r"ExecutionException|InvocationTargetException|UndeclaredThrowableException)$)[\w$]+",
      C.CODE, 0.5, "AppendOnceFlowCreatedFromBatchQueryException"),

    *VETO_ROWS,

    # ---- phrases (last resort, but the only evidence for many failures) ---------------------
    # PERMISSION
    R("text.permission-denied", K.PHRASE,
      r"\bpermission[_ ]denied\b|\binsufficient (privileges|permissions)\b|\baccess (is )?denied\b|"
      r"\bdoes not have (the )?(required )?[\w ]*(permission|privilege)s?\b|"
      r"\bdoes not have [A-Z][A-Z_ ]+ (on|permission|privilege)\b|\bnot authori[sz]ed\b|"
      r"\bis not authori[sz]ed to perform\b|\bAuthorizationPermissionMismatch\b|\bAuthorizationFailure\b|"
      r"\bdo(es)? not have permission\b|\bmissing (the )?required permission|\bnot have privilege|"
      r"\bPermission [\w.:/\-]{3,120} is required\b|\bpermissions? (is|are) required\b|\brequires? .{0,60}\bpermissions?\b|"
      r"\bPermission '?[\w.:/\-]{3,120}'? denied\b|\bcould not verify permissions?\b|"
      r"\bdoes not have [\w.]{3,80} access to\b|\b(failed with|returned) (code|status) 403\b|\b403 != 200\b",
      C.PERMISSION, 0.9, "User does not have USE SCHEMA on Schema 'main.default'"),
    R("text.http-403", K.PHRASE, r"\b(HTTP(/\d(\.\d)?)? ?403|403 Forbidden|Status ?Code: ?403|status 403|"
      r"error_code\"?:? ?\"?403|\b403\b[^\n]{0,40}\bForbidden)\b|\bForbidden\b[^\n]{0,60}\b403\b",
      C.PERMISSION, 0.88, "< HTTP/2.0 403 Forbidden"),
    R("text.auth-failed", K.PHRASE,
      r"\binvalid (access )?token\b|\btoken (is )?(expired|invalid)\b|\b(401|HTTP 401) Unauthorized\b|"
      r"\bauthentication (failed|failure|error)\b|\bfailed to authenticate\b|\binvalid credentials?\b|"
      r"\bLogin failed for user\b|\bcredentials? (were|was|are|is) (not|in)valid|\bexpired (credentials|token)\b|"
      r"\bPERMISSION_DENIED\b|\bUNAUTHENTICATED\b|\bInvalidAuthenticationInfo\b|\bAADSTS\d+|"
      r"\b(incorrect|invalid|wrong) (username|user name|user|login) or password\b|"
      r"\bpassword authentication failed\b|\bcould not access (the )?key ?vault\b",
      C.PERMISSION, 0.88, "Invalid access token."),
    R("text.http-client-auth", K.PHRASE, r"\b40[13] Client Error\b|\bStatus(Code)?[=: ]+40[13]\b|"
      r"\busing anonymous credentials\b|\bServer failed to authenticate the request\b|"
      r"\bAuthenticationFailed\b|\bInvalidAccessKeyId\b|\bSignatureDoesNotMatch\b|\bExpiredToken\b",
      C.PERMISSION, 0.88, "requests.exceptions.HTTPError: 403 Client Error: Forbidden for url"),
    R("text.forbidden-storage", K.PHRASE, r"\bAmazonS3Exception: Forbidden\b|\bAccess Denied \(Service: Amazon S3|"
      r"\bThis request is not authorized to perform this operation\b|\bAuthorizationPermissionMismatch",
      C.PERMISSION, 0.92, "com.amazonaws.services.s3.model.AmazonS3Exception: Forbidden; request: HEAD"),

    # DATA
    R("text.table-not-found", K.PHRASE,
      r"\bTable or view not found\b|\bTable not found\b|\btable or view .{1,200}? cannot be found\b|"
      r"\bis not a Delta table\b|\bDelta table .{0,200}? doesn't exist\b|\bSchema .{0,120}? not found\b|"
      r"\bDatabase .{0,120}? not found\b|\bno such table\b|\bTABLE_OR_VIEW_NOT_FOUND\b",
      C.DATA, 0.88, "AnalysisException: Table or view not found: sales.orders"),
    R("text.path-not-found", K.PHRASE,
      r"\bPath does not exist\b|\bNo such file or directory\b|\bfile(system)? does not exist\b|"
      r"\bThe specified (path|filesystem|container|blob) does not exist\b|\bFileNotFound\b|"
      r"\bNoSuchKey\b|\bThe specified key does not exist\b|\bLocation .{0,200}? does not exist\b|"
      r"\bdirectory .{0,200}? does not exist\b|\bPathNotFound\b|\bfile not found\b|"
      r"\b(Output|target) (directory|path|location) .{0,200}? already exists\b|\bpath .{0,200}? already exists\b|"
      r"\bLOCATION_ALREADY_EXISTS\b|\bnon-empty location\b|\bTABLE_OR_VIEW_ALREADY_EXISTS\b",
      C.DATA, 0.85, "AnalysisException: Path does not exist: dbfs:/mnt/raw/2024/"),
    R("text.schema-mismatch", K.PHRASE,
      r"\bschema mismatch\b|\bFailed to merge (fields|incompatible data types)\b|\bmergeSchema\b|"
      r"\bcannot be cast to\b.{0,80}\bcolumn\b|\bIncompatible (data|column) types?\b|"
      r"\bColumn .{0,120}? (has|with) (a )?(different|incompatible) (type|data type)\b|"
      r"\bschema of the (source|target) .{0,80}? (does not|doesn't) match\b|\bdoes not have any columns\b|"
      r"\bCannot write incompatible data\b|\bIllegal Parquet type\b|\bcontains invalid character\(s\)|"
      r"\bschemas? .{0,60}?\bout of sync\b",
      C.DATA, 0.86, "A schema mismatch detected when writing to the Delta table"),
    R("text.constraint", K.PHRASE,
      r"\bNOT NULL constraint violated\b|\bCHECK constraint .{0,200}? violated\b|\bconstraint violat|"
      r"\bmultiple source rows matched\b|\bduplicate key\b|\bviolates (unique|primary key|foreign key)|"
      r"\bUnique constraint\b|\bcannot insert (the value )?NULL\b",
      C.DATA, 0.88, "Cannot perform MERGE as multiple source rows matched and attempted to update the same target row"),
    R("text.corrupt", K.PHRASE,
      r"\bcorrupt(ed)? (file|record|parquet|data|block)|\bMalformed (records?|CSV|JSON|input)\b|"
      r"\bnot a Parquet file\b|\bCould not read footer\b|\bmagic number\b.{0,40}\bexpected\b|"
      r"\bunderlying files have been updated\b|\bEncountered error while reading file\b|\bemptyDataError\b|"
      r"\bNo columns to parse from file\b|\bUnable to infer schema\b|\bNo data found\b|"
      r"\bfailOnDataLoss\b|\bdata may have been lost\b|\bcould not find any delta file\b|"
      r"\bcolumn cannot be converted\b|\bFileReadException\b|\bCannot convert Parquet\b|"
      r"\bFailure in test\b|\bconfigured to (fail|warn) if\b|\bdata (quality|validation) (check|test)s? failed\b|"
      r"\b(transaction|delta) log .{0,80}?(missing|not found|corrupt|truncated)\b|"
      r"\bcheckpoint .{0,80}?(is corrupt|corrupted|missing|not found|incompatible)\b",
      C.DATA, 0.8, "Caused by: java.io.IOException: Could not read footer for file"),
    # CODE
    R("text.syntax", K.PHRASE,
      r"\bSyntax error\b|\bmismatched input\b|\bParseException\b|\bextraneous input\b|\bno viable alternative\b|"
      r"\binvalid syntax\b|\bcannot resolve\b|\bis not defined\b|\bhas no attribute\b|\bnot callable\b|"
      r"\bmissing \d+ required positional argument\b|\bunexpected keyword argument\b|\bCompilation failed\b|"
      r"\bcompilation error\b|\berror: (value|not found: value|type mismatch)\b|\bunsupported operand type|"
      r"\bUnsupported magic commands?\b|\bSPARK-5063\b|\breference SparkContext from\b|"
      r"\bSparkContext (can|should) only be used on the driver\b|\bTask not serializable\b|\bcannot pickle\b|"
      r"\bPicklingError\b|\bcould not serialize\b",
      C.CODE, 0.8, "mismatched input 'FROM' expecting <EOF>"),
    R("text.child-notebook", K.PHRASE,
      r"\bNotebookExecutionException\b|\bnotebook run failed\b|\bFAILED: .{0,80}? Module: Failed\b|"
      r"\bCommand (failed|exited) with (a )?non-zero (exit )?(code|status)\b|\bUncaught exception in notebook\b|"
      r"\bSystemExit: [1-9]|\bexit code [1-9]\d*\b(?![^\n]{0,20}\b(137|143|139)\b)",
      C.CODE, 0.62, "com.databricks.NotebookExecutionException: FAILED"),
    R("text.dbt-model", K.PHRASE,
      r"\b(Database|Compilation|Runtime) Error in (model|test|seed|snapshot)\b|\bdbt\d{4}\b",
      C.CODE, 0.65, "Database Error in model orders (models/orders.sql)"),
    # DEPENDENCY
    R("text.library-install", K.PHRASE,
      r"\bLibrary installation (failed|attempted)\b|\bLibrary resolution failed\b|\bfailed to install librar|"
      r"\bDRIVER_LIBRARY_INSTALLATION_FAILURE\b|\bLIBRARY_INSTALLATION_ERROR\b|\bpip install\b.{0,200}\bfailed\b|"
      r"\bpip\b[^\n]{0,200}?\binstall\b[^\n]{0,300}?\bnon-zero exit status\b",
      C.DEPENDENCY, 0.86, "Library installation failed for library due to user error for pypi"),
    R("text.package-missing", K.PHRASE,
      r"\bNo matching distribution found\b|\bCould not find a version that satisfies\b|"
      r"\bNO_MATCHING_DISTRIBUTION_ERROR\b|\bunresolved dependency\b|\bNo module named\b|"
      r"\bwheel with name .{1,200}? could not be found\b|\bCannot find (package|module)\b|"
      r"\bResolutionImpossible\b|\bdependency conflict|\bconflicting dependencies\b|"
      r"\bCommand errored out with exit status\b|\bFailed building wheel\b|\bFailed to build\b .{0,80}\bwheel|"
      r"\bnot found in (any of )?the (configured )?repositor|\bCould not resolve dependencies\b|"
      r"\bpackage .{1,120}? (is not installed|not found)\b|\brequires .{1,80}? which is not installed\b|"
      r"\bNo suitable driver( found)?\b|\bdriver class .{1,120}? not found\b|"
      r"\bDistributionNotFound\b|\bdistribution was not found\b|\bRun \W?dbt deps\b|\bcannot import name\b|"
      r"\bversion of dbt is not supported\b|\bis not supported with the .{1,80}? package\b|"
      r"\bcompiled using NumPy \d|\bcannot be run in NumPy\b|\bnumpy\.dtype size changed\b|"
      r"\b'JavaPackage' object is not callable\b|"
      r"\brequires (dbt|python|spark|scala) version\b|\bincompatible with (this|the installed) version\b|"
      r"\bCouldn't find remote ref\b|\bError checking out spec\b",
      C.DEPENDENCY, 0.9, "ERROR: No matching distribution found for pandas==9.9.9", False),
    R("text.package-source-down", K.PHRASE,
      r"\btransient (Maven|pypi|PyPI|repository|network) (issue|error)\b|\bCannot download some libraries\b|"
      r"\bconnection broken by\b|\bRead timed out\b.{0,200}\b(pypi|pip|maven|repository)\b|"
      r"\b(pypi|maven|repository|repo1)\b.{0,200}\b(timed out|unreachable|503|Temporary failure)\b",
      C.DEPENDENCY, 0.85, "Cannot download some libraries due to transient Maven issue. Please try again later.",
      True),
    # CONFIGURATION
    R("text.invalid-parameter", K.PHRASE,
      r"\bINVALID_PARAMETER_VALUE\b|\bInvalid spark version\b|\bCluster validation error\b|"
      r"\bMissing required field\b|\bcannot create (job|cluster|pipeline)\b|\bInvalid (node|instance) type\b|"
      r"\bnode type .{1,80}? (is not supported|not supported|does not exist|is invalid)\b|"
      r"\bUnsupported (instance|node) type\b|\bINVALID_STATE_TRANSITION\b|\bMALFORMED_REQUEST\b|"
      r"\bcould be 0 only for SingleNode\b|\bspark_version\b.{0,80}\b(invalid|not supported|must be)\b|"
      r"\bmust be attached for clusters\b|\bInvalid (cluster|job) (configuration|settings?|spec)\b",
      C.CONFIGURATION, 0.9, "Unexpected user error while preparing the cluster: INVALID_PARAMETER_VALUE"),
    R("text.not-found-config", K.PHRASE,
      r"\bNotebook not found\b|\bNo input widget named\b|\bInputWidgetNotDefined\b|\bwidget .{1,80}? (is not defined|not found)\b|"
      r"\bSecret does not exist\b|\b(Secret )?scope( .{1,120}?)? does not exist\b|\bSECRET_RESOLUTION_ERROR\b|"
      r"\bno credentials found for them in the configuration\b|\bConfiguration property .{1,200}? not found\b|"
      r"\bconfiguration path .{0,80}?(does not exist|not a valid)\b|\bINIT_SCRIPT_FAILURE\b|"
      r"\binit script .{0,120}? (failed|exited)\b|\bDOCKER_IMAGE_PULL_FAILURE\b|\bCluster .{1,60}? does not exist\b|"
      r"\bUnity Catalog is not enabled\b|\bnot supported on (shared|serverless)\b|\bis not allowed in (shared|serverless)\b|"
      r"\bRepo .{1,80}? not found\b|\bGit .{0,40}?(checkout|clone) failed\b|\binvalid (git )?(branch|reference)\b|"
      r"\bmissing (required )?(environment variable|config(uration)? key|parameter)\b|\bUnknown (config|configuration) key\b|"
      r"\bInvalid configuration value detected\b|\bFailure to initiali[sz]e configuration|"
      r"\bConfiguration [\w.\-]{3,120} is not available\b|\bis not enabled (on|for) this (cluster|workspace|compute)\b|"
      r"\b(is )?(enabled|supported|available) only (on|for|in)\b.{0,80}\b(clusters?|compute|warehouses?|access mode)\b|"
      r"\byou must create a pipeline\b|\bKeyProviderException\b|"
      r"\bNo such (secret|scope)\b|\bcluster policy\b.{0,80}\b(violat|invalid|not allowed)|"
      r"\bINVALID_ARGUMENT\b|\bUNSUPPORTED_INSTANCE_TYPE\b|\bBOOTSTRAP_TIMEOUT_DUE_TO_MISCONFIG\b|"
      r"\b[A-Z]+_(VNET|NETWORK|NSG|SUBNET|SECURITY_GROUP)_CONFIGURATION_FAILURE\b|\bNETWORK_CONFIGURATION_FAILURE\b|"
      r"\bAWS_UNSUPPORTED_FAILURE\b|\bINSTANCE_POOL_NOT_FOUND\b|\bAZURE_INVALID_DEPLOYMENT_TEMPLATE\b|"
      r"\bnot supported in (your|the) (requested )?(Availability Zone|region|zone)\b|"
      r"\bquota for the number of (jobs|clusters|pipelines|runs|notebooks)\b|"
      r"\bno tables are defined\b|\bpipeline .{0,60}? (is not|isn't) (configured|defined)\b|"
      r"\bCould not find profile named\b|\bInvalidParameterValue\b|\binvalid parameter value\b|"
      r"\bNot a dbt project\b|\bMissing dbt_project\.yml\b|\bcannot configure default credentials\b|"
      r"\bUnable to locate credentials\b|\bNoCredentialsError\b|\bNo FileSystem for scheme\b|"
      r"\bis not (whitelisted|allowlisted)\b|\bnot supported (in|on|with) Spark Connect\b",
      C.CONFIGURATION, 0.86, "Notebook not found: /Repos/etl/main"),
    # RESOURCE
    R("text.oom", K.PHRASE,
      r"\bJava heap space\b|\bGC overhead limit exceeded\b|\bout of memory\b|\bOutOfMemory\b|\bOOM\b|"
      r"\bCannot allocate memory\b|\bUnable to acquire \d+ bytes of memory\b|\bMemory limit exceeded\b|"
      r"\bexceeds (the )?(configured )?memory limit|\bmemoryOverhead\b|\bkilled by the OOM killer\b|"
      r"\bstd::bad_alloc\b|\bKryo serialization failed: Buffer overflow\b|\bkryoserializer\.buffer\.max\b|"
      r"\bNot enough memory\b|\binsufficient memory\b|\bNative memory allocation .{0,20}failed\b|"
      r"\bunable to create new native thread\b|\bfailed to reserve\b.{0,60}\bmemory\b|"
      r"\bspark\.rpc\.message\.maxSize\b|\bHard killed Driver\b|\bdriver\b.{0,40}\bunresponsive for \d+",
      C.RESOURCE, 0.9, "java.lang.OutOfMemoryError: Java heap space"),
    R("text.exit-137", K.PHRASE,
      r"\bexit (code|status)[: ]+(137|143)\b|\bExit status: (137|143)\b|\bContainer killed\b|"
      r"\bContainer marked as failed\b|\bKilled by external signal\b|\bSIGKILL\b|\bsignal 9\b",
      C.RESOURCE, 0.87, "Container killed on request. Exit code is 137"),
    R("text.executor-lost", K.PHRASE,
      r"\bExecutorLostFailure\b|\bLost executor\b|\bRemote RPC client disassociated\b|"
      r"\bThe spark driver has stopped unexpectedly\b|\bDriver (has )?(stopped|crashed|down)\b|"
      r"\bdriver is restarting\b|\bSpark context has stopped and the driver\b|"
      r"\bdriver is (temporarily )?unavailable\b|\bDriver is up but is not responsive\b|\bDRIVER_OUT_OF_MEMORY\b|"
      r"\bPython (worker|kernel) (exited|died|crashed) unexpectedly\b|\bThe Python kernel is unresponsive\b|"
      r"\bFetchFailed(Exception)?\b|\bMissing an output location for shuffle\b|\bfatal error in the Python process\b",
      C.RESOURCE, 0.82, "ExecutorLostFailure (executor 5 exited caused by one of the running tasks)"),
    R("text.disk-full", K.PHRASE,
      r"\bNo space left on device\b|\bDisk quota exceeded\b|\bdisk (is )?full\b|\bDRIVER_OUT_OF_DISK\b|"
      r"\bnot enough space\b",
      C.RESOURCE, 0.9, "java.io.IOException: No space left on device"),
    R("text.max-result-size", K.PHRASE,
      r"\bspark\.driver\.maxResultSize\b|\bTotal size of serialized results\b|"
      r"\bSize of broadcasted table far exceeds\b|\bbroadcast .{0,40}?(exceeds|too large)\b|\bToo large frame\b",
      C.RESOURCE, 0.9, "Total size of serialized results of 2689 tasks (2.0 GB) is bigger than spark.driver.maxResultSize"),
    # TIMEOUT (before NETWORK: a read time-out is a time-out)
    R("text.kafka-metadata-timeout", K.PHRASE,
      r"\bTimeout expired while fetching topic metadata\b|\bTimed out waiting for a node assignment\b|"
      r"\bnot present in metadata after \d+ ?ms\b",
      C.TIMEOUT, 0.9, "org.apache.kafka.common.errors.TimeoutException: Timeout expired while fetching topic metadata"),
    R("text.timeout", K.PHRASE,
      r"\bFutures timed out\b|\btimed out after\b|\bRead timed out\b|"
      r"\bdeadline exceeded\b|\bTimeout (waiting|exceeded|expired)\b|\bheartbeat(s)? (timed out|timeout)\b|"
      r"\bno recent heartbeats\b|\bheartbeat timed out\b|\bQuery timed out\b|\bstatement timeout\b|"
      r"\bexceeded (its|the) (maximum|max) (duration|time)|\btimeout of \d+ ?(ms|s|seconds)\b|\b504 Gateway Time-?out\b|"
      r"\bGateway Time-?out\b|\btimed out waiting\b|\boperation timed out\b|\bRequest timed out\b",
      C.TIMEOUT, 0.86, "java.util.concurrent.TimeoutException: Futures timed out after [300 seconds]"),
    R("text.timed-out", K.PHRASE, r"\btimed out\b|\btime-?out (exceeded|expired|reached)\b|\btook too long\b|"
      r"\btime-?out on (blocking|read|write|wait)\b|"
      r"\bCould not execute broadcast in \d+ ?secs?\b|\bspark\.sql\.broadcastTimeout\b",
      C.TIMEOUT, 0.75, "[Databricks] timed out: RUNNING"),
    # NETWORK
    R("text.connect-timeout", K.PHRASE,
      r"\bconnect(ion)? timed out\b|\bconnection attempt failed\b|\bTCP/IP connection to the host .{1,200}? has failed\b|"
      r"\bConnectTimeout(Exception|Error)?\b|\btimed out (while )?connecting\b",
      C.NETWORK, 0.9, "The TCP/IP connection to the host sqlsrv, port 1433 has failed. Error: Connection timed out."),
    R("text.connection", K.PHRASE,
      r"\bConnection (refused|reset|aborted|closed by peer)\b|\bConnection pool shut down\b|\bBroken pipe\b|"
      r"\bUnknownHostException\b|\bName or service not known\b|\bTemporary failure in name resolution\b|"
      r"\bNo route to host\b|\bnodename nor servname\b|\bCould not resolve host\b|\bNetwork is unreachable\b|"
      r"\bRemote end closed connection\b|\bConnection to .{1,120}? failed\b|\bsocket hang up\b|\bECONNRESET\b|"
      r"\bECONNREFUSED\b|\bSSL(Error|EOFError|Exception)\b|\bEOF occurred in violation of protocol\b|"
      r"\bunexpected end of stream\b|\bPremature EOF\b|\bfailed to respond\b|\bCommunications link failure\b|"
      r"\bUnable to execute HTTP request\b|\bconnection was closed\b|\bError during request to server\b|"
      r"\bencountered communication error\b|\bPremature end of (chunk|Content-Length)\b|"
      r"\bconnection (is|was|has been) (inactive|closed)\b|"
      r"\bconnection (was )?(lost|dropped|interrupted)\b",
      C.NETWORK, 0.82, "java.net.SocketException: Connection reset"),
    R("text.http-server-error", K.PHRASE, r"\b50[0234] Server Error\b|\bMax retries exceeded with url\b|"
      r"\bFailed to connect to\b|\bFailed to establish a new connection\b|\bbecame unreachable\b.{0,40}\b(502|503|504)\b|"
      r"\bUNAVAILABLE\b.{0,80}\b(grpc|rpc|channel)\b|\bgrpc\b.{0,80}\bUNAVAILABLE\b|\bBackend Error\b|\bbackendError\b",
      C.NETWORK, 0.8, "requests.exceptions.HTTPError: 503 Server Error: Service Unavailable for url"),
    R("text.throttled", K.PHRASE,
      r"\b503 Slow Down\b|\bSlow ?Down\b.{0,40}\b503\b|\bStatus Code: 503\b|\b503 Service Unavailable\b|"
      r"\bService Unavailable\b|\bServer ?Busy\b|\bThe server is busy\b|\bover the account limit\b|"
      r"\bRequest rate is large\b|\bTooManyRequests\b|\b429 Too Many Requests\b|\bRate exceeded\b|\bthrottl(ed|ing)\b|"
      r"\b429 Client Error\b|\bToo Many Requests\b|"
      r"\bRequestLimitExceeded\b|\bbad HTTP status code: 50[234]\b|\bunexpected code 50[234]\b|\b502 Bad Gateway\b|"
      r"\bHTTP(/\d(\.\d)?)? 50[23]\b|\bstatus(_code)?[=: ]+50[23]\b|\bTEMPORARILY_UNAVAILABLE\b|\bretry later\b(?!.{0,40}cluster)",
      C.NETWORK, 0.82, "AmazonS3Exception: Slow Down (Service: Amazon S3; Status Code: 503; Error Code: 503 Slow Down)"),
    # INFRASTRUCTURE
    R("text.quota-never-fits", K.PHRASE,
      r"Current Limit: (?P<limit>\d+)[^\n]{0,200}?Additional Required: (?P<required>\d+)",
      C.CONFIGURATION, 0.9,
      "exceeding approved Total Regional Cores quota. Current Limit: 8, Current Usage: 0, Additional Required: 16",
      check=_needs_more_than_the_limit),
    R("text.cloud-capacity", K.PHRASE,
      r"\bCloud Provider Launch Failure\b|\bCLOUD_PROVIDER_LAUNCH_FAILURE\b|\bCLOUD_PROVIDER_RESOURCE_STOCKOUT\b|"
      r"\bcloud provider failures?\b|\bCould not launch cluster\b|\bexceeding (approved )?quota limits?\b|"
      r"\bInsufficientInstanceCapacity\b|\bnot enough (available )?capacity\b|\bSPOT_INSTANCE_TERMINATION\b|"
      r"\bspot instance.{0,80}(terminat|reclaim|preempt|lost)|\bQUOTA_EXCEEDED\b|\bQuotaExceeded\b|"
      r"\bexceeding approved .{0,80}quota\b|\bquota (exceeded|limit)\b|\bAZURE_RESOURCE_PROVIDER_THROTTLING\b|"
      r"\bSkuNotAvailable\b|\bZonalAllocationFailed\b|\bAllocationFailed\b|\bOverconstrainedAllocationRequest\b|"
      r"\bIP_EXHAUSTION\b|\bSubnetIsFull\b|\bINSTANCE_POOL_MAX_CAPACITY_REACHED\b|\bUNEXPECTED_LAUNCH_FAILURE\b|"
      r"\bREQUEST_THROTTLED\b|\bInstance(s)? (was|were) (lost|preempted|terminated unexpectedly)\b",
      C.INFRASTRUCTURE, 0.9, "InsufficientInstanceCapacity: AWS does not currently have enough available capacity"),
    R("text.cluster-state", K.PHRASE,
      r"\bCluster .{1,80}? (was )?terminated while waiting\b|\bunexpected state (Terminated|Pending|Terminating|Error)\b|"
      r"\bError starting terminated cluster\b|\bCLUSTER_CREATION_TIMED_OUT\b|\bCluster (was )?in (a )?terminal state\b|"
      r"\bCluster .{1,80}? (failed to start|terminated unexpectedly)\b|\bSPARK_STARTUP_FAILURE\b|"
      r"\bDRIVER_UNREACHABLE\b|\bDRIVER_UNRESPONSIVE\b|\bCOMMUNICATION_LOST\b|\bCould not reach driver of cluster\b|"
      r"\bINTERNAL_ERROR: \b|\bInternal (server )?error\b.{0,60}\b(Databricks|retry|try again)\b|"
      r"\bcontact Databricks support\b.{0,80}\bpersists\b|\bSERVICE_FAULT\b|\bBOOTSTRAP_TIMEOUT\b(?!_DUE_TO_MISCONFIG)|"
      r"\bInstance bootstrap failed\b|\bunexpected launch failure\b|\bContainer launch failed\b",
      C.INFRASTRUCTURE, 0.86, "Cluster 1102-043337-abc was terminated while waiting on it to be ready"),
    R("text.cluster-fault", K.PHRASE,
      r"\b[A-Z][A-Z_]{3,}\s*\((SERVICE_FAULT|CLOUD_FAILURE)\)|\bCluster became unreachable\b|"
      r"\bSparkContext (was|has been) (shut down|stopped)\b|\bCannot call methods on a stopped SparkContext\b|"
      r"\bUnable to instantiate .{0,40}HiveMetaStoreClient\b",
      C.INFRASTRUCTURE, 0.8, "Cluster terminated. Reason: DRIVER_UNREACHABLE (SERVICE_FAULT)"),
    R("text.startup", K.PHRASE,
      r"\berror during startup\b|\bSPARK_STARTUP_FAILURE\b|\bSpark (failed|could not) (to )?start\b|"
      r"\bfailed to start (the )?(cluster|driver|Spark)\b",
      C.INFRASTRUCTURE, 0.88, "Spark encountered an error during startup. Driver down"),
    R("text.platform-not-ready", K.PHRASE,
      r"\bfilesystem is not ready\b|\bnot fully initialized yet\b|\bMETASTORE_COMPONENT_UNHEALTHY\b|"
      r"\bmetastore (is )?(down|unavailable|unhealthy)\b|\bworkspace is (temporarily )?unavailable\b|"
      r"\bSession handle\b.{0,120}\b(has not been initialized|had already closed)\b",
      C.INFRASTRUCTURE, 0.9, "Cluster library installation failed on the driver because the filesystem is not ready"),
    # CONCURRENCY
    R("text.concurrent", K.PHRASE,
      r"\bconcurrent update\b|\bConcurrent update to the (commit|log)\b|\bconcurrent (transaction|modification|writer)s?\b|"
      r"\bConflicting commit\b|\bMultiple streaming (jobs|queries) detected\b|\bwas changed by a concurrent\b|"
      r"\bdeadlock (detected|found)\b|\bLock wait timeout\b|\bcould not acquire (the )?lock\b|\bCOULD_NOT_ACQUIRE_LOCK\b|"
      r"\bWORKSPACE_RUN_LIMIT_EXCEEDED\b|\btoo many (concurrent|active) (runs|jobs|requests)\b|"
      r"\bjob creation rate limit\b|\bmaximum number of (concurrent|active) (runs|jobs)\b|"
      r"\bexceeded the concurrent (limit|request limit)\b|\bconcurrent (request|run)s? limit\b|"
      r"\bREQUEST_LIMIT_EXCEEDED\b|\btoken bucket limit\b|\bAPI rate limit\b|\bexceeding (the )?rate limit\b|"
      r"\bschema of your Delta table has changed .{0,60}?since your DataFrame\b|"
      r"\brate limit (has been |was )?exceeded\b|\bRESOURCE_EXHAUSTED\b|\b(status|response)[ _-]?code\W{0,3}429\b|"
      r"\btoo many 429 error responses\b",
      C.CONCURRENCY, 0.86, "Files were added to the root of the table by a concurrent update"),
    # CANCELED
    R("text.canceled", K.PHRASE, r"\bRun cancell?ed\b|\bcancell?ed by (user|the user|\S+@\S+)\b|"
      r"\bSkipping this run because the limit of \d+ maximum concurrent runs\b",
      C.CANCELED, 0.8, "Run cancelled by user@example.com"),
)


# Rows whose match is a *symptom* a fixed condition can surface as — a connection refused, reset
# or timed out, a time-out, a lost executor or driver, a cluster that stopped — rather than a
# named transient cause (throttling, cloud capacity, a concurrent writer, a structured code). A
# retry that rests on one of these alone is not firm: the model is asked for a second opinion
# first and may veto it (shared.llm.veto).
SYMPTOMS = frozenset({
    "exc.network", "text.connection", "text.connect-timeout", "text.http-server-error", "text.timed-out",
    "text.executor-lost", "text.cluster-state", "text.startup", "text.kafka-metadata-timeout",
})


def _check_unique() -> dict[str, Rule]:
    by_id: dict[str, Rule] = {}
    for r in RULES:
        if r.id in by_id:
            raise ValueError(f"duplicate rule id {r.id}")
        if r.retryable is not None and r.category is not Category.DEPENDENCY:
            raise ValueError(f"rule {r.id}: 'retryable' is only for DEPENDENCY rules")
        if r.kind is EvidenceKind.VETO and r.category not in DETERMINISTIC | {Category.DEPENDENCY}:
            raise ValueError(f"rule {r.id}: a veto names a fixed condition a person must fix")
        by_id[r.id] = r
    return by_id


RULES_BY_ID = _check_unique()
if SYMPTOMS - set(RULES_BY_ID):
    raise ValueError(f"SYMPTOMS names unknown rules: {sorted(SYMPTOMS - set(RULES_BY_ID))}")
_BY_KIND: dict[EvidenceKind, tuple[Rule, ...]] = {
    k: tuple(r for r in RULES if r.kind is k) for k in EvidenceKind
}


def rules_of_kind(kind: EvidenceKind) -> tuple[Rule, ...]:
    return _BY_KIND[kind]


def get_rule(rule_id: str) -> Rule:
    try:
        return RULES_BY_ID[rule_id]
    except KeyError:
        raise KeyError(f"unknown rule id {rule_id!r}; valid ids: {', '.join(sorted(RULES_BY_ID))}") from None
