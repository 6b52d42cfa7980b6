from django.urls import path

from wallets import views

urlpatterns = [
    path("wallet", views.WalletView.as_view(), name="wallet"),
    path("wallet/transactions", views.TransactionListView.as_view(), name="wallet-transactions"),
    path("wallet/deposits", views.DepositCreateView.as_view(), name="wallet-deposits"),
    path("wallet/deposits/<str:deposit_id>", views.DepositDetailView.as_view(), name="wallet-deposit"),
    path("wallet/withdrawals", views.WithdrawalListCreateView.as_view(), name="wallet-withdrawals"),
    path("wallet/withdrawals/<str:withdrawal_id>", views.WithdrawalDetailView.as_view(), name="wallet-withdrawal"),
]
