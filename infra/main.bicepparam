// Example parameters for infra/main.bicep. Copy, edit, then:
//   az deployment group create -g <resource-group> -f infra/main.bicep -p infra/main.bicepparam
// No secrets here: they go into Key Vault after the deployment (docs/deploy.md).
using './main.bicep'

param namePrefix = 'dbxtriage'

// Start in shadow mode: every decision is recorded and nothing is done. Switch to 'act' once the
// recorded decisions look right (docs/deploy.md, "6. From shadow to act").
param triageMode = 'shadow'

param databricksHost = 'https://adb-1234567890123456.7.azuredatabricks.net'

// azure-identity: the app's managed identity is added to the workspace as a service principal.
// pat: put a token into Key Vault as the secret databricks-token. oauth-m2m: a Databricks
// service principal (databricksClientId, and its secret in Key Vault as databricks-client-secret).
param databricksAuth = 'azure-identity'

// Your own object id (az ad signed-in-user show --query id -o tsv), or a group's with
// secretsOfficerPrincipalType = 'Group': who may put secrets into the vault. Empty: nobody.
param secretsOfficerPrincipalId = ''

param maxRetries = 3
param maxWorkers = 16
param nodeTypeLadder = [
  'Standard_D4ds_v5'
  'Standard_D8ds_v5'
  'Standard_D16ds_v5'
]

param emailDefaultTo = [
  'data-platform@example.com'
]
param emailEscalationTo = [
  'oncall@example.com'
]
param emailDataLocation = 'Europe'

// Azure OpenAI is optional: 'none' (the template's default) runs on the rules alone; 'create'
// makes an account and a deployment of the model below (docs/deploy.md, "Azure OpenAI").
param openAiMode = 'none'
param openAiModelName = 'gpt-4o-mini'
param openAiModelVersion = '2024-07-18'
param openAiDeploymentSku = 'GlobalStandard'
param openAiCapacity = 30

param maximumInstanceCount = 40
param instanceMemoryMB = 2048

param tags = {
  workload: 'databricks-triage'
}
