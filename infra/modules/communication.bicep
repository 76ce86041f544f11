// Azure Communication Services for email: an Email Communication Service with an Azure-managed
// domain (DoNotReply@<guid>.azurecomm.net, ready without DNS work), linked to a Communication
// Services resource that the app calls keylessly with its managed identity.

@description('Tags applied to every resource.')
param tags object

@description('Communication Services resource name (globally unique).')
param communicationServiceName string

@description('Email Communication Service name.')
param emailServiceName string

@description('Where ACS stores data at rest, e.g. "United States", "Europe", "UK".')
param dataLocation string

resource emailService 'Microsoft.Communication/emailServices@2023-04-01' = {
  name: emailServiceName
  location: 'global'
  tags: tags
  properties: {
    dataLocation: dataLocation
  }
}

resource managedDomain 'Microsoft.Communication/emailServices/domains@2023-04-01' = {
  parent: emailService
  name: 'AzureManagedDomain'
  location: 'global'
  tags: tags
  properties: {
    domainManagement: 'AzureManaged'
    userEngagementTracking: 'Disabled'
  }
}

resource communicationService 'Microsoft.Communication/communicationServices@2023-04-01' = {
  name: communicationServiceName
  location: 'global'
  tags: tags
  properties: {
    dataLocation: dataLocation
    linkedDomains: [
      managedDomain.id
    ]
  }
}

output name string = communicationService.name
output endpoint string = 'https://${communicationService.properties.hostName}'
output senderAddress string = 'DoNotReply@${managedDomain.properties.mailFromSenderDomain}'
