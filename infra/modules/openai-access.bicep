// Grants the function app's identity "Cognitive Services OpenAI User" on one Azure OpenAI account.
// Deployed at the account's resource group, so it works for an account this template created and
// for an existing one elsewhere (openAiMode 'existing' with existingOpenAiResourceId).

@description('Azure OpenAI account name, in this module\'s resource group.')
param accountName string

@description('Object (principal) id of the function app\'s system-assigned identity.')
param principalId string

// Built-in role: Cognitive Services OpenAI User (inference only; cannot read keys or change deployments).
var openAiUserRoleId = '5e0bd9bd-7b93-4f28-af87-19fc36ad61bd'

resource account 'Microsoft.CognitiveServices/accounts@2024-10-01' existing = {
  name: accountName
}

resource openAiUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, principalId, openAiUserRoleId)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', openAiUserRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}
