// Databricks failure triage: everything one resource group needs for a working, keyless app.
//
//   az deployment group create -g <rg> -f infra/main.bicep -p infra/main.bicepparam
//
// Syntax note: tests/test_infra.py parses every .bicep file with pycep-parser (the Bicep CLI is
// not available in CI), so this repository keeps to what it parses: no spread operator, no
// multi-parameter lambdas, no decorators on properties of user-defined types, and comparisons
// inside ternaries are parenthesised. See docs/deploy.md.

metadata description = 'Databricks job-failure triage on Azure Functions Flex Consumption (FC1, Python 3.13).'

targetScope = 'resourceGroup'

// ---------------------------------------------------------------- naming and placement

@description('Region for everything except the global ACS resources. Must offer Flex Consumption.')
param location string = resourceGroup().location

@description('Short prefix for resource names: 2-10 lower-case letters, digits or hyphens.')
@minLength(2)
@maxLength(10)
param namePrefix string = 'dbxtriage'

@description('Tags applied to every resource.')
param tags object = {}

// ---------------------------------------------------------------- triage behaviour

@description('shadow: decide and record, never act (the safe default). act: carry decisions out.')
@allowed([
  'shadow'
  'act'
])
param triageMode string = 'shadow'

@description('Databricks workspace URL, e.g. https://adb-1234567890123456.7.azuredatabricks.net')
param databricksHost string

@description('How the app authenticates to Databricks (DATABRICKS_AUTH_TYPE): azure-msi or azure-identity (its managed identity, no secret), oauth-m2m (a Databricks service principal: databricksClientId here, its secret in Key Vault as databricks-client-secret) or pat (token in Key Vault as databricks-token).')
@allowed([
  'azure-identity'
  'azure-msi'
  'oauth-m2m'
  'pat'
])
param databricksAuth string = 'azure-identity'

@description('With databricksAuth = oauth-m2m: the Databricks service principal\'s OAuth client id (not a secret).')
param databricksClientId string = ''

@description('Workspaces the sweep covers, as host or id=host; empty: databricksHost only.')
param triageWorkspaces array = []

@description('Automatic retries per run lineage before escalating (job tag triage.max_retries wins).')
@minValue(0)
@maxValue(10)
param maxRetries int = 3

@description('Ceiling on the worker count of a resized rerun.')
@minValue(1)
param maxWorkers int = 16

@description('Node types from small to large that a resized rerun may step up; empty: never change node type.')
param nodeTypeLadder array = []

@description('Spark conf keys a rerun may change; empty: the built-in allow-list.')
param sparkConfAllowlist array = []

@description('NCRONTAB schedule of the sweep (six fields, seconds first).')
param sweepSchedule string = '0 */5 * * * *'

@description('Who gets SEND_EMAIL mail when a job names no owner.')
param emailDefaultTo array = []

@description('On-call list for ESCALATE mail.')
param emailEscalationTo array = []

@description('Channels for SEND_EMAIL notices, tried in order: email, pagerduty, teams, slack, webhook. Their URLs and keys go to Key Vault.')
param notifyVia array = [
  'email'
]

@description('Channels for ESCALATE pages, tried in order (e.g. pagerduty then email).')
param escalateVia array = [
  'email'
]

@description('Where Azure Communication Services keeps data at rest.')
param emailDataLocation string = 'United States'

@description('Extra non-secret app settings (e.g. TRIAGE_LLM_MAX_CALLS_PER_HOUR). Never put a secret here: secrets go to Key Vault.')
param settingOverrides object = {}

// ---------------------------------------------------------------- Azure OpenAI (optional)

@description('create: a new Azure OpenAI account and deployment; existing: use existingOpenAi*; none: rules only.')
@allowed([
  'create'
  'existing'
  'none'
])
param openAiMode string = 'none'

@description('Region of a created Azure OpenAI account (the model must be offered there).')
param openAiLocation string = location

@description('Model of a created deployment.')
param openAiModelName string = 'gpt-4o-mini'

@description('Model version of a created deployment.')
param openAiModelVersion string = '2024-07-18'

@description('Deployment type of a created deployment.')
@allowed([
  'GlobalStandard'
  'DataZoneStandard'
  'Standard'
])
param openAiDeploymentSku string = 'GlobalStandard'

@description('Capacity of a created deployment, in thousands of tokens per minute.')
@minValue(1)
param openAiCapacity int = 30

@description('openAiMode existing: the endpoint, e.g. https://my-openai.openai.azure.com')
param existingOpenAiEndpoint string = ''

@description('openAiMode existing: the deployment name.')
param existingOpenAiDeployment string = ''

@description('openAiMode existing: the account resource id; when set, the app is granted Cognitive Services OpenAI User on it.')
param existingOpenAiResourceId string = ''

@description('OPENAI_API_VERSION; empty: the v1 endpoint (no api-version).')
param openAiApiVersion string = ''

// ---------------------------------------------------------------- scale and access

@description('Most instances the app may scale out to.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Memory of each instance in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Optional: object id of the person or group who will put secrets into the vault.')
param secretsOfficerPrincipalId string = ''

@description('Principal type of secretsOfficerPrincipalId.')
@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param secretsOfficerPrincipalType string = 'User'

// ---------------------------------------------------------------- names

var token = toLower(uniqueString(subscription().id, resourceGroup().id, namePrefix, location))
var compactPrefix = toLower(replace(namePrefix, '-', ''))
var names = {
  storage: take('st${compactPrefix}${token}', 24)
  keyVault: 'kv-${take(namePrefix, 10)}-${take(token, 10)}'
  logAnalytics: 'log-${namePrefix}-${token}'
  appInsights: 'appi-${namePrefix}-${token}'
  plan: 'plan-${namePrefix}-${token}'
  app: 'func-${namePrefix}-${token}'
  communication: 'acs-${namePrefix}-${token}'
  emailService: 'ecs-${namePrefix}-${token}'
  openAi: 'oai-${namePrefix}-${token}'
}
var queueName = 'triage-requests'
var deploymentContainerName = 'app-package'
var openAiDeploymentName = 'triage'

// ---------------------------------------------------------------- resources

module monitoring './modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    location: location
    tags: tags
    logAnalyticsName: names.logAnalytics
    appInsightsName: names.appInsights
  }
}

module storage './modules/storage.bicep' = {
  name: 'storage'
  params: {
    location: location
    tags: tags
    name: names.storage
    deploymentContainerName: deploymentContainerName
    queueName: queueName
    tableNames: [
      'TriageDecisions'
      'TriageState'
    ]
  }
}

module keyVault './modules/keyvault.bicep' = {
  name: 'keyvault'
  params: {
    location: location
    tags: tags
    name: names.keyVault
  }
}

module communication './modules/communication.bicep' = {
  name: 'communication'
  params: {
    tags: tags
    communicationServiceName: names.communication
    emailServiceName: names.emailService
    dataLocation: emailDataLocation
  }
}

module openAi './modules/openai.bicep' = if (openAiMode == 'create') {
  name: 'openai'
  params: {
    location: openAiLocation
    tags: tags
    name: names.openAi
    deploymentName: openAiDeploymentName
    modelName: openAiModelName
    modelVersion: openAiModelVersion
    deploymentSku: openAiDeploymentSku
    capacity: openAiCapacity
  }
}

var openAiEndpoint = (openAiMode == 'create') ? openAi!.outputs.endpoint : ((openAiMode == 'existing') ? existingOpenAiEndpoint : '')
var openAiDeployment = (openAiMode == 'create') ? openAi!.outputs.deploymentName : ((openAiMode == 'existing') ? existingOpenAiDeployment : '')

// Every non-secret setting the code reads (shared/config.py). The secret ones (DATABRICKS_TOKEN,
// DATABRICKS_CLIENT_SECRET, ARM_CLIENT_SECRET, TRIAGE_WEBHOOK_USERNAME/PASSWORD, TRIAGE_FEEDBACK_SIGNING_KEY,
// AZURE_OPENAI_API_KEY, OPENAI_API_KEY, ACS_CONNECTION_STRING, PAGERDUTY_ROUTING_KEY, TEAMS_WEBHOOK_URL,
// SLACK_WEBHOOK_URL, TRIAGE_WEBHOOK_URL, TRIAGE_WEBHOOK_SECRET) are left unset: the app reads them from KEY_VAULT_URL.
// Host storage, telemetry and TRIAGE_PUBLIC_BASE_URL are set in modules/functionapp.bicep.
var triageSettings = {
  TRIAGE_MODE: triageMode
  TRIAGE_STORAGE: 'https://${storage.outputs.name}.table.${environment().suffixes.storage}'
  TRIAGE_QUEUE_NAME: queueName
  DATABRICKS_HOST: databricksHost
  DATABRICKS_AUTH_TYPE: databricksAuth
  DATABRICKS_CLIENT_ID: databricksClientId
  TRIAGE_WORKSPACES: join(triageWorkspaces, ',')
  TRIAGE_MAX_RETRIES: string(maxRetries)
  TRIAGE_MAX_WORKERS: string(maxWorkers)
  TRIAGE_NODE_TYPE_LADDER: join(nodeTypeLadder, ',')
  TRIAGE_SPARK_CONF_ALLOWLIST: join(sparkConfAllowlist, ',')
  TRIAGE_SWEEP_SCHEDULE: sweepSchedule
  TRIAGE_SWEEP_OVERLAP: '10m'
  TRIAGE_SWEEP_MAX_LOOKBACK: '24h'
  TRIAGE_LLM_MIN_RULE_CONFIDENCE: '0.7'
  TRIAGE_LLM_MAX_CALLS_PER_HOUR: '60'
  TRIAGE_LLM_TIMEOUT: '20'
  TRIAGE_LLM_CACHE_TTL: '7d'
  TRIAGE_LLM_MAX_PROMPT_TOKENS: '3000'
  AZURE_OPENAI_ENDPOINT: openAiEndpoint
  AZURE_OPENAI_DEPLOYMENT: openAiDeployment
  OPENAI_API_VERSION: openAiApiVersion
  OPENAI_BASE_URL: ''
  OPENAI_MODEL: ''
  KEY_VAULT_URL: keyVault.outputs.uri
  TRIAGE_SECRET_CACHE_TTL: '5m'
  ACS_ENDPOINT: communication.outputs.endpoint
  EMAIL_SENDER: communication.outputs.senderAddress
  EMAIL_DEFAULT_TO: join(emailDefaultTo, ',')
  EMAIL_ESCALATION_TO: join(emailEscalationTo, ',')
  TRIAGE_EMAIL_WINDOW: '6h'
  TRIAGE_FEEDBACK_LINK_TTL: '14d'
  TRIAGE_PRECEDENT_TTL: '90d'
  TRIAGE_HOPELESS_AFTER: '3'
  TRIAGE_HOPELESS_WINDOW: '7d'
  TRIAGE_MAX_TASK_OUTPUTS: '20'
  TRIAGE_NOTIFY_VIA: join(notifyVia, ',')
  TRIAGE_ESCALATE_VIA: join(escalateVia, ',')
  TRIAGE_INCIDENT_WINDOW: '30m'
  PAGERDUTY_EVENTS_URL: 'https://events.pagerduty.com/v2/enqueue'
  TRIAGE_ACTING_TIMEOUT: '15m'
  TRIAGE_ACTION_ATTEMPTS: '5'
  TRIAGE_BUDGET_USD_PER_DAY: ''
  TRIAGE_LLM_BUDGET_SHARE: '0.1'
  TRIAGE_DBU_PRICE_USD: '0.30,0.45'
  TRIAGE_DBU_RATES: ''
  TRIAGE_LLM_PRICE_USD_PER_1M_TOKENS: '0.15,0.60'
}

module functionApp './modules/functionapp.bicep' = {
  name: 'functionapp'
  params: {
    location: location
    tags: tags
    planName: names.plan
    appName: names.app
    storageAccountName: storage.outputs.name
    deploymentContainerUrl: storage.outputs.deploymentContainerUrl
    appInsightsName: monitoring.outputs.appInsightsName
    appSettings: union(triageSettings, settingOverrides)
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
  }
}

module rbac './modules/rbac.bicep' = {
  name: 'rbac'
  params: {
    principalId: functionApp.outputs.principalId
    storageAccountName: storage.outputs.name
    keyVaultName: keyVault.outputs.name
    appInsightsName: monitoring.outputs.appInsightsName
    communicationServiceName: communication.outputs.name
    secretsOfficerPrincipalId: secretsOfficerPrincipalId
    secretsOfficerPrincipalType: secretsOfficerPrincipalType
  }
}

module openAiAccessCreated './modules/openai-access.bicep' = if (openAiMode == 'create') {
  name: 'openai-access'
  params: {
    accountName: openAi!.outputs.name
    principalId: functionApp.outputs.principalId
  }
}

module openAiAccessExisting './modules/openai-access.bicep' = if ((openAiMode == 'existing') && !empty(existingOpenAiResourceId)) {
  name: 'openai-access-existing'
  scope: resourceGroup(split(existingOpenAiResourceId, '/')[2], split(existingOpenAiResourceId, '/')[4])
  params: {
    accountName: last(split(existingOpenAiResourceId, '/'))
    principalId: functionApp.outputs.principalId
  }
}

// ---------------------------------------------------------------- outputs (never a secret)

@description('Function app name (for func azure functionapp publish).')
output functionAppName string = functionApp.outputs.name

@description('Host name of the function app.')
output functionHost string = functionApp.outputs.defaultHostName

@description('Webhook URL for the Databricks notification destination; replace <function-key> with the key from az functionapp function keys list.')
output webhookUrlTemplate string = 'https://${functionApp.outputs.defaultHostName}/api/databricks/webhook?code=<function-key>'

@description('Sender address of the Azure-managed email domain.')
output emailSender string = communication.outputs.senderAddress

@description('Key Vault that holds the app\'s secrets.')
output keyVaultName string = keyVault.outputs.name

@description('Object id of the app\'s managed identity (add it to Databricks as a service principal for DATABRICKS_AUTH=azure-identity).')
output principalId string = functionApp.outputs.principalId

@description('Storage account of the app (queues and decision tables).')
output storageAccountName string = storage.outputs.name
